"""trust: revoked certificates and rotated JWT signing keys

Revision ID: cp_trust_0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_trust_0001"
down_revision = None
branch_labels = ("cp_trust",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trust_revoked_certificates",
        sa.Column("serial", sa.String(40), primary_key=True),
        sa.Column("wl_id", sa.String(63), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoke_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("changed_version", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_trust_revoked_certificates_wl_id", "trust_revoked_certificates", ["wl_id"])
    op.create_table(
        "trust_token_keys",
        sa.Column("kid", sa.String(16), primary_key=True),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dropped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_version", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trust_token_keys")
    op.drop_index("ix_trust_revoked_certificates_wl_id", "trust_revoked_certificates")
    op.drop_table("trust_revoked_certificates")
