"""Risk guardrails at the CP: signed event ingest, per-pair imbalance, thresholds, reconciliation."""
