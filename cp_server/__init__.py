"""The XporY Cross-WL control plane: policies, PKI, risk signals, audit and analytics. Never on the checkout path."""
