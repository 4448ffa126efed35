"""Offer digests: each WL node's top offers as each destination sees them, pushed to the CP for compensation plans."""
