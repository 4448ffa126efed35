"""SignalService: risk signals pushed to WL nodes (store, hub, cross-replica listener, servicer)."""
