"""StorefrontService: the WL node's local API for the WL's own services."""
