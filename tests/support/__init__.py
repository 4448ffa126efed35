"""Helpers shared by the test suite: PKI, databases, grpcurl."""
