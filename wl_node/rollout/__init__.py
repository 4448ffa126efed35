"""Rollout guardrails on the WL node: its WL's feature flags on the local API, and the rollout stage of each
direction (cohort, maximum order value, daily value cap) enforced at checkout and on PlaceOrder, from the node's
policy view (``docs/rollout.md``)."""
