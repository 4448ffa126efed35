"""The CP audit log: append-only, hash-chained, signed."""
