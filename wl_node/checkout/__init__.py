"""The importer's checkout: local Checkout, PlaceOrder at the exporter, finalize/abort, compensation, reconciler."""
