"""Operational telemetry from the nodes and the live SLO report (``AnalyticsService/GetSloReport``)."""
