"""Tables of the rollout feature, in their own MetaData (migrated by the ``cp_rollout`` Alembic branch).

* ``rollout_flags``: one row per (WL, flag name); the flag's whole state.
* ``rollout_directions``: one row per direction with a rollout: stage, hold, and the configured limits of the pilot
  and expansion stages as canonical JSON (``records.Limits``), and ``slo_since``: the automatic hold judges SLO
  figures from then on (set when a hold is released, so the breach just dealt with does not hold it again).
* ``rollout_node_versions``: what each WL node last reported of its software, contract version and capabilities.

Rows of the first two are only written by change transactions (``ChangeRunner``) and stamped with their version;
both tables stay small (flags per WL, directions with a rollout), so every world load reads them whole.
"""

from __future__ import annotations

import sqlalchemy as sa

from xwl_runtime.sqltypes import UtcDateTime

metadata = sa.MetaData()

flags = sa.Table(
    "rollout_flags",
    metadata,
    sa.Column("wl_id", sa.String(63), primary_key=True),
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("percent_bp", sa.Integer(), nullable=False),
    sa.Column("default_enabled", sa.Boolean(), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("expire_time", UtcDateTime(), nullable=False),
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("changed_version", sa.BigInteger(), nullable=False),
)

directions = sa.Table(
    "rollout_directions",
    metadata,
    sa.Column("exporter", sa.String(63), primary_key=True),
    sa.Column("importer", sa.String(63), primary_key=True),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("held", sa.Boolean(), nullable=False),
    sa.Column("hold_reason", sa.String(500), nullable=False),
    sa.Column("pilot", sa.Text(), nullable=False),
    sa.Column("expansion", sa.Text(), nullable=False),
    sa.Column("step_back_on_breach", sa.Boolean(), nullable=False),
    sa.Column("slo_since", UtcDateTime(), nullable=True),
    sa.Column("changed_version", sa.BigInteger(), nullable=False),
)

node_versions = sa.Table(
    "rollout_node_versions",
    metadata,
    sa.Column("wl_id", sa.String(63), primary_key=True),
    sa.Column("software_version", sa.String(64), nullable=False),
    sa.Column("contract_version", sa.String(64), nullable=False),
    sa.Column("features", sa.Text(), nullable=False),
    sa.Column("report_time", UtcDateTime(), nullable=False),
)
