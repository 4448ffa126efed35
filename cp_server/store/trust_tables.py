"""Tables of the trust feature, in their own MetaData (migrated by the ``cp_trust`` Alembic branch).

* ``trust_revoked_certificates``: one row per revoked WL node certificate. ``not_after`` is the certificate's
  own expiry: once it passes, the entry no longer needs to travel (the certificate is refused anyway).
* ``trust_token_keys``: the JWT signing keys after the first rotation. The row whose ``retire_at`` is NULL is the
  current signing key; the others stay published until ``dropped_at`` is set, one token lifetime after they
  stopped signing. Private keys are never stored here: each lives in the CP's PKI directory
  (``jwt-signing-<kid>.key``, mode 0600, created with O_EXCL).
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

revoked_certificates = sa.Table(
    "trust_revoked_certificates",
    metadata,
    sa.Column("serial", sa.String(40), primary_key=True),
    sa.Column("wl_id", sa.String(63), nullable=False, index=True),
    sa.Column("not_after", UtcDateTime(), nullable=False),
    sa.Column("revoke_time", UtcDateTime(), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("actor", sa.String(300), nullable=False),
    sa.Column("changed_version", sa.BigInteger(), nullable=False),
)

token_keys = sa.Table(
    "trust_token_keys",
    metadata,
    sa.Column("kid", sa.String(16), primary_key=True),
    sa.Column("public_key_pem", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("retire_at", UtcDateTime(), nullable=True),
    sa.Column("dropped_at", UtcDateTime(), nullable=True),
    sa.Column("changed_version", sa.BigInteger(), nullable=False),
)
