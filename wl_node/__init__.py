"""A WL node: policy agent, catalog sync, risk enforcer, TraderService for peers, local API for the WL's services."""
