"""core: operator-set DNS names of each WL node's certificate

Revision ID: cp_core_0002
Revises: cp_core_0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_core_0002"
down_revision = "cp_core_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("white_labels") as batch:
        batch.add_column(sa.Column("dns_names", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("white_labels") as batch:
        batch.drop_column("dns_names")
