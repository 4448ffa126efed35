"""Personal data on a node: trader accounts (encrypted at rest), contact disclosures, subject requests."""
