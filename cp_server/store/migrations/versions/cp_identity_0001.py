"""identity: bootstrap tokens and issued certificates

Revision ID: cp_identity_0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_identity_0001"
down_revision = None
branch_labels = ("cp_identity",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_bootstrap_tokens",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("wl_id", sa.String(63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_identity_bootstrap_tokens_wl_id", "identity_bootstrap_tokens", ["wl_id"])
    op.create_table(
        "identity_certificates",
        sa.Column("serial", sa.String(40), primary_key=True),
        sa.Column("wl_id", sa.String(63), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=True),
    )
    op.create_index("ix_identity_certificates_wl_id", "identity_certificates", ["wl_id"])
    op.create_index("ix_identity_certificates_token_sha256", "identity_certificates", ["token_sha256"])


def downgrade() -> None:
    op.drop_index("ix_identity_certificates_token_sha256", "identity_certificates")
    op.drop_index("ix_identity_certificates_wl_id", "identity_certificates")
    op.drop_table("identity_certificates")
    op.drop_index("ix_identity_bootstrap_tokens_wl_id", "identity_bootstrap_tokens")
    op.drop_table("identity_bootstrap_tokens")
