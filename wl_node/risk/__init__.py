"""The node's risk guardrails (issue 5, node half): signal enforcer, trade gate, local imbalance guard."""
