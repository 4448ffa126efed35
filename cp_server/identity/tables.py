"""Tables of the identity feature, in their own MetaData (migrated by the ``cp_identity`` Alembic branch).

* ``identity_bootstrap_tokens``: one-time enrollment tokens, stored only as sha256 of the token.
* ``identity_certificates``: every certificate the CP issued online (enrollment and renewal), so that event
  signatures can later be checked against the key a WL was really given; with the start of its renewal chain
  (bounded identity age) and the serial that superseded it.
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()


bootstrap_tokens = sa.Table(
    "identity_bootstrap_tokens",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("wl_id", sa.String(63), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime(), nullable=True),
)

issued_certificates = sa.Table(
    "identity_certificates",
    metadata,
    # Serials are up to 159 random bits: lower-case hex, beyond any SQL integer type.
    sa.Column("serial", sa.String(40), primary_key=True),
    sa.Column("wl_id", sa.String(63), nullable=False, index=True),
    sa.Column("fingerprint_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("pem", sa.Text(), nullable=False),
    sa.Column("not_before", UtcDateTime(), nullable=False),
    sa.Column("not_after", UtcDateTime(), nullable=False),
    sa.Column("issued_at", UtcDateTime(), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),  # "enroll" | "renew"
    # The bootstrap token an enrollment spent (sha256): lets a node whose answer was lost fetch it again.
    sa.Column("token_sha256", sa.String(64), nullable=True, index=True),
    # When the chain this certificate belongs to started (its enrollment); renewals inherit it, and no
    # certificate of the chain is valid past origin_at + the CP's maximum identity age. NULL (rows recorded
    # before chains were tracked, certificates imported from offline issuance) counts as not_before.
    sa.Column("origin_at", UtcDateTime(), nullable=True),
    # The serial of the certificate a renewal replaced this one with; a superseded certificate never renews.
    sa.Column("superseded_by", sa.String(40), nullable=True),
)
