"""What each WL node can enforce: its reported software, contract version and capabilities.

Nodes send them with every ``ReportPolicyStatus`` (after each applied view, so at least as often as the policy
changes, and at start). The CP stores a report only when it differs from the last one it stored, and checks them
inside change transactions: a flag or rollout a node cannot enforce is refused (FAILED_PRECONDITION
``FEATURE_NOT_SUPPORTED``) unless the operator forces it, and ``xcwl policy status`` shows what each node's view
uses that the node did not report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.store.records import World
from cp_server.store.rollout_tables import node_versions
from xwl_runtime.errors import FailedPrecondition

FEATURE_FLAGS = "feature_flags"
"""The node serves its WL's flags to its apps (FeatureFlagService)."""
ROLLOUT_CAPS = "rollout_caps"
"""The node enforces rollout cohorts and caps at checkout (importer) and PlaceOrder (exporter)."""
MAX_FEATURES = 32
MAX_VERSION_CHARS = 64


@dataclass(frozen=True)
class NodeVersion:
    """One node's last report."""

    wl_id: str
    software_version: str
    contract_version: str
    features: tuple[str, ...]
    report_time: dt.datetime


def _row(row: sa.RowMapping) -> NodeVersion:
    return NodeVersion(wl_id=row["wl_id"], software_version=row["software_version"],
                       contract_version=row["contract_version"], features=tuple(row["features"].split()),
                       report_time=row["report_time"])


def used_features(world: World, wl_id: str) -> set[str]:
    """The capabilities ``wl_id``'s current view needs its node to have."""
    used = set()
    if any(key[0] == wl_id for key in world.flags):
        used.add(FEATURE_FLAGS)
    if any(wl_id in key for key in world.rollouts):
        used.add(ROLLOUT_CAPS)
    return used


class NodeVersions:
    """Stores the nodes' reports (only changes are written) and answers capability checks."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._last: dict[str, tuple[str, str, tuple[str, ...]]] = {}

    async def record(self, wl_id: str, software: str, contract: str, features: list[str], now: dt.datetime) -> None:
        """Store a node's report unless it equals the last one stored by this replica."""
        clean = tuple(sorted({f[:MAX_VERSION_CHARS] for f in features[:MAX_FEATURES] if f.isprintable() and f}))
        key = (software[:MAX_VERSION_CHARS], contract[:MAX_VERSION_CHARS], clean)
        if self._last.get(wl_id) == key:
            return
        values = {"wl_id": wl_id, "software_version": key[0], "contract_version": key[1],
                  "features": " ".join(clean), "report_time": now}
        async with self._engine.begin() as conn:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            stmt = insert(node_versions).values(values)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=[node_versions.c.wl_id],
                set_={c: stmt.excluded[c] for c in ("software_version", "contract_version", "features",
                                                    "report_time")}))
        self._last[wl_id] = key

    async def all(self) -> dict[str, NodeVersion]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(node_versions))).mappings().all()
        return {r["wl_id"]: _row(r) for r in rows}


async def require(conn: AsyncConnection, wl_id: str, feature: str) -> None:
    """FAILED_PRECONDITION ``FEATURE_NOT_SUPPORTED`` unless ``wl_id``'s node reported ``feature`` (read in the
    caller's change transaction, so every replica judges on the stored reports)."""
    row = (await conn.execute(sa.select(node_versions).where(node_versions.c.wl_id == wl_id))).mappings().first()
    found = _row(row) if row is not None else None
    if found is not None and feature in found.features:
        return
    software = found.software_version if found is not None and found.software_version else "unknown"
    raise FailedPrecondition(
        f"the node of {wl_id} (software {software}) has not reported the {feature!r} capability; upgrade it, "
        "or force the change", reason="FEATURE_NOT_SUPPORTED",
        metadata={"wl_id": wl_id, "feature": feature, "software_version": software})
