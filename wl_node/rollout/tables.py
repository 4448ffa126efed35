"""Tables of the node's rollout guardrails (schema: the ``node_rollout`` Alembic branch).

* ``rollout_daily_usage``: the exporter's confirmed order value per importer and UTC day while the direction is
  restricted, in units of 10⁻⁸ of the exporter's currency (an integer, so the cap check is one conditional UPDATE).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

daily_usage = sa.Table(
    "rollout_daily_usage",
    metadata,
    sa.Column("importer_wl", sa.String(63), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("used_e8", sa.BigInteger(), nullable=False),
)
