"""The imported catalog: exportable offers and their feed (exporter side), the sync job and snapshot (importer side)."""
