"""identity: chain origin (bounded identity age) and supersession of renewed certificates

Revision ID: cp_identity_0002
Revises: cp_identity_0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_identity_0002"
down_revision = "cp_identity_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_certificates") as batch:
        batch.add_column(sa.Column("origin_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("superseded_by", sa.String(40), nullable=True))
    # Older rows keep origin_at NULL, which the CP reads as the certificate's not_before: their renewals
    # still stop at a bounded age.


def downgrade() -> None:
    with op.batch_alter_table("identity_certificates") as batch:
        batch.drop_column("superseded_by")
        batch.drop_column("origin_at")
