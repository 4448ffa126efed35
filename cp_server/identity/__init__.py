"""Identity at the CP: bootstrap tokens, online enrollment and renewal, JWT issuance and the JWKS."""
