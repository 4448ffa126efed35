"""The trader client: calling peer exporters with tokens, deadlines, retries and a breaker per exporter."""
