"""Operational telemetry to the CP: what this node saw as importer (orders, latency, breakers), sent on change."""
