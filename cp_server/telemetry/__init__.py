"""TelemetryService: signed ledger and enforcement events from WL nodes."""
