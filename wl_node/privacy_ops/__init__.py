"""Operator jobs over the personal data every feature holds: a data subject's export and erasure, and the rotation
of the data keys. They sit above the features whose tables they work over (catalog, checkout) and use the privacy
primitives below them (``wl_node.privacy``: trader accounts, the disclosure log, the key file)."""
