"""AnalyticsService: balance table, alerts, signals, discrepancies."""
