"""The live SLO report: each shared target of the executive document, measured over a window, OK or BREACH.

| figure | from | target |
| --- | --- | --- |
| ``confirmation_p99`` | importers' confirmation histograms (``ops_peer_minutes``), merged | ≤ 0.5 s |
| ``error_rate`` | importers' errors / attempts | < 0.005 |
| ``policy_drift_max``, ``policy_drift_p99`` | ``node_status`` vs ``policy_versions`` (now − commit time of the
  oldest version a node lacks) | ≤ 300 s |
| ``reaction_p99`` | ALERT/DISABLE signals: CP receipt of the crossing event → the later of both WLs' acks | ≤ 60 s |
| ``events_with_correlation_and_signature`` | accepted / (accepted + refused for no correlation id or signature) | = 1 |

Checkout figures are global and per pair (``importer/exporter``); the p99 of a merged histogram is the upper bound
of the bucket holding the 99th percentile (an upper estimate, like Prometheus's ``histogram_quantile``).

Beside the figures (no shared target), the catalog sync lag per importer and exporter as the importers last
reported it (``sync_lags``): a stale copy's lag is extrapolated to now, since it stays stale until its node reports
another level.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.risk import tables as rt
from cp_server.store.schema import cp_state, node_status, policy_versions
from xwl_runtime.sync_lag import lag_level

from .store import LATENCY_BOUNDS_S
from .tables import peer_minutes, sync_lag

CONFIRMATION_P99_S = Decimal("0.5")
ERROR_RATE = Decimal("0.005")
POLICY_DRIFT_S = Decimal("300")
REACTION_S = Decimal("60")
EVENTS_SHARE = Decimal("1")
INTEGRITY_REASONS = ("MISSING_CORRELATION_ID", "UNSIGNED", "BAD_SIGNATURE", "UNKNOWN_SIGNER")
"""Refusal reasons that mean an event came without a correlation id or a valid signature."""


@dataclass(frozen=True)
class Figure:
    name: str
    scope: str
    value: Decimal | None
    target: Decimal
    unit: str
    samples: int
    lower_is_better: bool = True
    strict: bool = False

    @property
    def breach(self) -> bool:
        if self.value is None:
            return False
        if self.lower_is_better:
            return self.value >= self.target if self.strict else self.value > self.target
        return self.value < self.target


@dataclass(frozen=True)
class SyncLag:
    """An importer's copy of an exporter's catalog, as last reported."""

    importer_wl: str
    exporter_wl: str
    level_s: float
    """0 = current (below 30 s) or the lower bound of the stale band reported."""
    seconds: float
    """The lag now: measured + time since for a stale copy, as measured for a current one."""
    measured_at: dt.datetime


def quantile(q: float, values: Sequence[float]) -> float | None:
    """Nearest-rank quantile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def histogram_quantile(q: float, counts: Sequence[int]) -> float | None:
    """Upper bound of the bucket holding quantile ``q`` (+Inf bucket → the largest finite bound)."""
    total = sum(counts)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= rank:
            return LATENCY_BOUNDS_S[min(i, len(LATENCY_BOUNDS_S) - 1)] if i < len(LATENCY_BOUNDS_S) else math.inf
    return math.inf


def _dec(value: float | None, places: str = "0.001") -> Decimal | None:
    if value is None:
        return None
    if math.isinf(value):
        return Decimal("999999")
    return Decimal(str(value)).quantize(Decimal(places))


class SloReporter:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def report(self, now: dt.datetime, window: dt.timedelta) -> list[Figure]:
        since = now - window
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(peer_minutes).where(peer_minutes.c.minute >= since))).all()
            figures = self._checkout(rows)
            figures += await self._drift(conn, now)
            figures.append(await self._reaction(conn, since))
            figures.append(await self._events(conn))
        return figures

    async def sync_lags(self, now: dt.datetime) -> list[SyncLag]:
        """Every stored lag, stale copies first (longest first), then current ones by pair."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(sync_lag))).all()
        lags = []
        for r in rows:
            level = lag_level(r.lag_seconds)
            since = max(0.0, (now - r.reported_at).total_seconds())
            lags.append(SyncLag(r.importer_wl, r.exporter_wl, level, r.lag_seconds + since if level else r.lag_seconds,
                                r.reported_at))
        return sorted(lags, key=lambda x: (x.level_s == 0, -x.seconds, x.importer_wl, x.exporter_wl))

    @staticmethod
    def _checkout(rows: Sequence[sa.Row[tuple[object, ...]]]) -> list[Figure]:
        scopes: dict[str, tuple[list[int], int, int]] = {}
        width = len(LATENCY_BOUNDS_S) + 1
        for r in rows:
            for scope in ("global", f"{r.importer_wl}/{r.exporter_wl}"):
                counts, attempts, errors = scopes.get(scope, ([0] * width, 0, 0))
                merged = [a + b for a, b in zip(counts, json.loads(r.buckets), strict=True)]
                scopes[scope] = (merged, attempts + int(r.attempts), errors + int(r.errors))
        scopes.setdefault("global", ([0] * width, 0, 0))
        out: list[Figure] = []
        for scope in sorted(scopes, key=lambda s: (s != "global", s)):
            counts, attempts, errors = scopes[scope]
            out.append(Figure("confirmation_p99", scope, _dec(histogram_quantile(0.99, counts)), CONFIRMATION_P99_S,
                              "s", sum(counts)))
            rate = Decimal(errors) / Decimal(attempts) if attempts else None
            out.append(Figure("error_rate", scope, rate.quantize(Decimal("0.0001")) if rate is not None else None,
                              ERROR_RATE, "ratio", attempts, strict=True))
        return out

    @staticmethod
    async def _drift(conn: AsyncConnection, now: dt.datetime) -> list[Figure]:
        current = (await conn.execute(sa.select(cp_state.c.policy_version))).scalar() or 0
        nodes = (await conn.execute(sa.select(node_status.c.applied_version))).scalars().all()
        committed = dict((await conn.execute(sa.select(policy_versions.c.version, policy_versions.c.committed_at)
                                             .where(policy_versions.c.version <= current))).all())
        drifts = []
        for applied in nodes:
            lacking = committed.get(int(applied) + 1)
            drifts.append(0.0 if applied >= current or lacking is None else (now - lacking).total_seconds())
        return [Figure("policy_drift_max", "global", _dec(max(drifts) if drifts else None), POLICY_DRIFT_S, "s",
                       len(drifts)),
                Figure("policy_drift_p99", "global", _dec(quantile(0.99, drifts)), POLICY_DRIFT_S, "s", len(drifts))]

    @staticmethod
    async def _reaction(conn: AsyncConnection, since: dt.datetime) -> Figure:
        s, a = rt.signals, rt.signal_acks
        rows = (await conn.execute(
            sa.select(s.c.signal_id, s.c.exporter_wl, s.c.importer_wl, s.c.trigger_received_at,
                      sa.func.count(a.c.wl_id).label("acks"), sa.func.max(a.c.effective_time).label("last"))
            .join(a, a.c.signal_id == s.c.signal_id)
            .where(s.c.kind.in_(("ALERT", "DISABLE")), s.c.trigger_received_at.is_not(None),
                   s.c.trigger_received_at >= since)
            .group_by(s.c.signal_id, s.c.exporter_wl, s.c.importer_wl, s.c.trigger_received_at))).all()
        reactions = [max(0.0, (r.last - r.trigger_received_at).total_seconds()) for r in rows if r.acks >= 2]
        return Figure("reaction_p99", "global", _dec(quantile(0.99, reactions)), REACTION_S, "s", len(reactions))

    @staticmethod
    async def _events(conn: AsyncConnection) -> Figure:
        c = rt.ingest_counters
        rows = (await conn.execute(sa.select(c.c.reason, sa.func.sum(c.c.count)).group_by(c.c.reason))).all()
        by = {r[0]: int(r[1]) for r in rows}
        good = by.get("ACCEPTED", 0) + by.get("DUPLICATE", 0)
        bad = sum(by.get(reason, 0) for reason in INTEGRITY_REASONS)
        share = (Decimal(good) / Decimal(good + bad)).quantize(Decimal("0.0001")) if good + bad else None
        return Figure("events_with_correlation_and_signature", "global", share, EVENTS_SHARE, "ratio", good + bad,
                      lower_is_better=False)
