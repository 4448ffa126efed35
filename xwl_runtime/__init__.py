"""Runtime shared by the control plane and the WL nodes: identity, TLS/PKI, RPC pipeline, errors, money, storage."""
