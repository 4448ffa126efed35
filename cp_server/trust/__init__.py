"""Trust lifecycle on the CP: certificate revocation, offline-certificate import, JWT signing-key rotation.

Tables in ``tables.py`` (Alembic branch ``cp_trust``); the peer-certificate check every mTLS RPC passes through
in ``guard.py``; the operator side in ``admin.py``.
"""
