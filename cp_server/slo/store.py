"""Ingest of ``TelemetryService/ReportOperations``: an importer's counters merged into per-minute rows, and its
offer views and PlaceOrder attempts into the pair's rollups (the conversion funnel, ``cp_server.rollups.funnel``).

The reporting WL comes from the caller's certificate (never a request field), and only exporters that are other
registered WLs are accepted. Histograms must use the CP's bucket bounds (``LATENCY_BOUNDS_S``), so rows from
every node merge by adding counts. Reports carry deltas, so the node resends nothing the CP already counted.

Catalog sync lag is state, not a delta: a peer's ``sync_lag`` (sent when its level changed) replaces the stored
lag of that importer and exporter (``ops_sync_lag``), ``stopped`` deletes it, and a report marked
``sync_lag_complete`` (a node's first after it started) also deletes the lag of every exporter it does not name.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.rollups.funnel import add_funnel
from cp_server.store.schema import white_labels
from xporty.cp.v1 import operations_pb2, telemetry_service_pb2
from xwl_runtime.errors import InvalidArgument
from xwl_runtime.metrics import LATENCY_BUCKETS_S

from .tables import breaker_transitions, peer_minutes, sync_lag

LATENCY_BOUNDS_S = LATENCY_BUCKETS_S
"""Bucket upper bounds every node reports with (the Prometheus histogram's, so both views agree)."""
MAX_PEERS = 1000
MAX_TRANSITIONS = 1000
STATES = ("open", "half_open", "closed")


def validate(request: telemetry_service_pb2.ReportOperationsRequest) -> None:
    """Refuse a malformed report before anything is stored."""
    if len(request.peers) > MAX_PEERS:
        raise InvalidArgument.field("peers", f"at most {MAX_PEERS}")
    if len(request.transitions) > MAX_TRANSITIONS:
        raise InvalidArgument.field("transitions", f"at most {MAX_TRANSITIONS}")
    for i, p in enumerate(request.peers):
        h = p.confirmation
        if not h.bounds_seconds and not h.counts:
            pass  # no histogram (a peer with only views or a sync lag): nothing to merge
        elif list(h.bounds_seconds) != list(LATENCY_BOUNDS_S) or len(h.counts) != len(LATENCY_BOUNDS_S) + 1:
            raise InvalidArgument.field(f"peers[{i}].confirmation", "histogram bounds differ from the CP's")
        if min((p.attempts, p.confirmed, p.denied, p.errors, p.offer_views, *h.counts), default=0) < 0:
            raise InvalidArgument.field(f"peers[{i}]", "counts must be >= 0")
        if not p.sync_lag_seconds >= 0:
            raise InvalidArgument.field(f"peers[{i}].sync_lag_seconds", "must be >= 0")
        lag = p.sync_lag
        if not (math.isfinite(lag.seconds) and lag.seconds >= 0 and math.isfinite(lag.level_seconds)
                and lag.level_seconds >= 0):
            raise InvalidArgument.field(f"peers[{i}].sync_lag", "seconds and level_seconds must be finite and >= 0")
    for i, t in enumerate(request.transitions):
        if t.to_state not in STATES:
            raise InvalidArgument.field(f"transitions[{i}].to_state", f"one of {', '.join(STATES)}")


class OperationsStore:
    """Merges operational reports and reads them back for the SLO report."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def ingest(self, importer_wl: str, request: telemetry_service_pb2.ReportOperationsRequest,
                     now: dt.datetime) -> None:
        validate(request)
        end = request.window_end.ToDatetime(dt.UTC) if request.HasField("window_end") else now
        end = min(end, now)  # a node's clock ahead of the CP's cannot put counts in the future
        minute = end.replace(second=0, microsecond=0)
        async with self._engine.begin() as conn:
            known = set((await conn.execute(sa.select(white_labels.c.wl_id))).scalars())
            for i, p in enumerate(request.peers):
                if p.exporter_wl not in known or p.exporter_wl == importer_wl:
                    raise InvalidArgument.field(f"peers[{i}].exporter_wl", "not another registered WL")
            await add_funnel(conn, importer_wl, [(p.exporter_wl, p.offer_views, p.attempts) for p in request.peers],
                             end)
            for p in request.peers:
                counts = list(p.confirmation.counts) or [0] * (len(LATENCY_BOUNDS_S) + 1)
                if p.attempts or p.confirmed or p.denied or p.errors or any(counts):
                    await _add_minute(conn, importer_wl, p, counts, minute)
                if p.HasField("sync_lag"):
                    await _set_lag(conn, importer_wl, p.exporter_wl, p.sync_lag, now)
                elif p.sync_lag_seconds > 0:  # the superseded field: a lag measured at the report's end
                    await _set_lag(conn, importer_wl, p.exporter_wl,
                                   operations_pb2.SyncLag(seconds=p.sync_lag_seconds), now, at=end)
            if request.sync_lag_complete:
                named = [p.exporter_wl for p in request.peers if p.HasField("sync_lag") and not p.sync_lag.stopped]
                await conn.execute(sync_lag.delete().where(sync_lag.c.importer_wl == importer_wl,
                                                           sync_lag.c.exporter_wl.not_in(named)))
            if request.transitions:
                await conn.execute(breaker_transitions.insert(), [
                    {"importer_wl": importer_wl, "exporter_wl": t.peer_wl[:63], "to_state": t.to_state,
                     "at": min(t.time.ToDatetime(dt.UTC), now) if t.HasField("time") else now,
                     "reason": t.reason[:128]} for t in request.transitions])


async def _add_minute(conn: AsyncConnection, importer_wl: str, p: operations_pb2.PeerOperations, counts: list[int],
                      minute: dt.datetime) -> None:
    key = (peer_minutes.c.importer_wl == importer_wl, peer_minutes.c.exporter_wl == p.exporter_wl,
           peer_minutes.c.minute == minute)
    row = (await conn.execute(sa.select(peer_minutes).where(*key))).first()
    if row is None:
        await conn.execute(peer_minutes.insert().values(
            importer_wl=importer_wl, exporter_wl=p.exporter_wl, minute=minute, attempts=p.attempts,
            confirmed=p.confirmed, denied=p.denied, errors=p.errors, buckets=json.dumps(counts)))
    else:
        merged = [a + b for a, b in zip(json.loads(row.buckets), counts, strict=True)]
        await conn.execute(peer_minutes.update().where(*key).values(
            attempts=row.attempts + p.attempts, confirmed=row.confirmed + p.confirmed,
            denied=row.denied + p.denied, errors=row.errors + p.errors, buckets=json.dumps(merged)))


async def _set_lag(conn: AsyncConnection, importer_wl: str, exporter_wl: str, lag: operations_pb2.SyncLag,
                   now: dt.datetime, at: dt.datetime | None = None) -> None:
    """Replace (or, when ``stopped``, delete) the stored lag; measured at ``lag.time`` (never after ``now``)."""
    key = (sync_lag.c.importer_wl == importer_wl, sync_lag.c.exporter_wl == exporter_wl)
    await conn.execute(sync_lag.delete().where(*key))
    if lag.stopped:
        return
    measured = at or (lag.time.ToDatetime(dt.UTC) if lag.HasField("time") else now)
    await conn.execute(sync_lag.insert().values(importer_wl=importer_wl, exporter_wl=exporter_wl,
                                                lag_seconds=lag.seconds, reported_at=min(measured, now)))
