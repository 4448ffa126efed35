"""Tables of the dashboard's access (migrated with the rollups, ``cp_rollup_0001``): tokens are stored hashed."""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

links = sa.Table(
    "dashboard_links",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(200), nullable=False),  # SPIFFE id that asked for the link
    sa.Column("scope_wl", sa.String(63), nullable=True),  # None: every WL (XporY operator)
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime(), nullable=True),
)

sessions = sa.Table(
    "dashboard_sessions",
    metadata,
    sa.Column("session_sha256", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("scope_wl", sa.String(63), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("ended_at", UtcDateTime(), nullable=True),
)
