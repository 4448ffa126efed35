"""The node's risk guardrails: signal enforcer, trade gate, local imbalance guard."""
