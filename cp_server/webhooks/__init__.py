"""Operator webhooks: a durable outbox of signed HTTP deliveries (alerts, disables, enables, discrepancies)."""
