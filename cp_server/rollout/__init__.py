"""Rollout guardrails at the CP: per-WL feature flags, per-direction rollout stages, the automatic hold on SLO
breach and the nodes' reported capabilities (``docs/rollout.md``)."""
