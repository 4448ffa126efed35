"""Hourly and monthly rollups of cross-WL trade per pair, kept in the ingest transaction (history for the dashboard,
GMV and conversion)."""
