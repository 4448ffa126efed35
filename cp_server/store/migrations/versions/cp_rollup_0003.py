"""rollup: the decimal columns become NUMERIC on PostgreSQL (the ingest adds to them in SQL)

SQLite keeps them as decimal text: it has no exact decimal type, and the rollup writer adds to them with a
function of its own over ``Decimal`` (``cp_server.rollups.writer``).

Revision ID: cp_rollup_0003
Revises: cp_rollup_0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cp_rollup_0003"
down_revision = "cp_rollup_0002"
branch_labels = None
depends_on = None

TABLES = ("rollup_pair_hours", "rollup_pair_months")
DECIMALS = ("exports_ab", "exports_ba", "amount_ab", "amount_ba")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        for column in DECIMALS:
            op.alter_column(table, column, type_=sa.Numeric(), existing_type=sa.String(96),
                            existing_nullable=False, postgresql_using=f"{column}::numeric")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        for column in DECIMALS:
            op.alter_column(table, column, type_=sa.String(96), existing_type=sa.Numeric(),
                            existing_nullable=False, postgresql_using=f"{column}::text")
