"""TraderService: the peer API other WL nodes call (offer feed here; orders from issue 4)."""
