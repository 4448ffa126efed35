"""TraderService: the peer API other WL nodes call (offer feed, orders, contact disclosure)."""
