"""The exporter's order desk: PlaceOrder / CancelOrder / GetOrder with idempotency, stock, ledger and outbox."""
