"""The operations reporter: counters and mergeable latency histograms per exporter, reported to the CP in batches.

Besides the PlaceOrder outcomes it counts the views of each exporter's imported offers (GetImportedOffer), so the
CP can compute the conversion of imported offers (views → checkouts → completed orders); only counts leave the node.

It also reports the catalog sync lag per exporter, as a level (``xwl_runtime.sync_lag``: current below 30 s, then
stale bands from 30 s to a day), and only when a level changes: the catalog sync calls ``sync_activity`` whenever
one of its workers learns something about its copy (a pull ended or failed, a heartbeat proved it current, a
worker started or stopped), and the reporter compares the levels with the last ones it queued. A stale copy's worker
keeps retrying (at most ``fallback_cap_s``, 30 s, apart), so a level is seen at most that late; a healthy stream
keeps its copy at level 0, which sends nothing. The first lag report after start names every exporter synced then
(``sync_lag_complete``), so the CP forgets what a previous run reported about exporters no longer imported.

Nothing is sent while nothing happens: the loop sleeps on an event that the first counted order (or breaker
transition, or lag level change) of a batch sets, waits ``batch_delay_s`` to gather the rest, then sends the deltas
once
(``TelemetryService/ReportOperations`` over the node's mTLS channel: the CP takes the WL from the certificate).
A failed send puts the deltas back and retries with jittered backoff, so nothing is lost or counted twice.

Each report is signed like the node's ledger events, with its certificate key: the request carries the serialized
report and an ECDSA signature over exactly those bytes (``SignedOperationsReport``); the CP refuses a report that is
unsigned or signed by a key that is not its caller's WL's. A node without a key (``--insecure-dev``) sends it
unsigned, which only a CP in the same mode accepts.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import grpc

from wl_node.cp_channel import CpChannel
from xporty.cp.v1 import operations_pb2, telemetry_service_pb2
from xporty.cp.v1 import telemetry_service_pb2_grpc as pb_grpc
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock
from xwl_runtime.metrics import LATENCY_BUCKETS_S
from xwl_runtime.sync_lag import lag_level

log = logging.getLogger(__name__)

ANSWERED = {"confirmed": "confirmed", "denied": "denied", "cancelled": "denied", "refused": "denied"}
"""Order outcomes that are an answer from a healthy exporter (the rest are errors)."""


@dataclass
class _Peer:
    attempts: int = 0
    confirmed: int = 0
    denied: int = 0
    errors: int = 0
    views: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))

    def add(self, other: _Peer) -> None:
        self.attempts += other.attempts
        self.confirmed += other.confirmed
        self.denied += other.denied
        self.errors += other.errors
        self.views += other.views
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]


@dataclass(frozen=True)
class _Batch:
    """What one report carries."""

    peers: dict[str, _Peer]
    transitions: list[operations_pb2.BreakerTransition]
    since: dt.datetime
    lags: dict[str, operations_pb2.SyncLag]
    lag_complete: bool


@dataclass(frozen=True)
class ReporterConfig:
    batch_delay_s: float = 5.0
    """How long the first change of a batch waits for others before the report goes out."""
    timeout_s: float = 5.0
    """Deadline of one ReportOperations call."""


class OperationsReporter:
    """Collects the importer's operational deltas and ships them on change."""

    def __init__(self, cp: CpChannel, clock: Clock, config: ReporterConfig | None = None,
                 sign: Callable[[bytes], tuple[bytes, str] | None] | None = None) -> None:
        self._cp = cp
        self._sign = sign
        """``sign(payload)`` → (signature, certificate fingerprint), or None without a key."""
        self._clock = clock
        self.config = config or ReporterConfig()
        self._peers: dict[str, _Peer] = {}
        self._transitions: list[operations_pb2.BreakerTransition] = []
        self._since = clock.now()
        self._dirty = asyncio.Event()
        self._backoff = Backoff(base_s=0.5, cap_s=30.0)
        self.reports_sent = 0
        self._lags: Callable[[], Mapping[str, float]] | None = None
        self._levels: dict[str, float] | None = None
        """Lag level per exporter as last queued; None until the first lag report is queued."""
        self._lag_changes: dict[str, operations_pb2.SyncLag] = {}
        self._lag_complete = False

    def track_sync(self, lags: Callable[[], Mapping[str, float]]) -> None:
        """Report the lag levels of ``lags()`` (exporter → seconds: ``CatalogSync.lags``) on ``sync_activity``."""
        self._lags = lags

    def sync_activity(self) -> None:
        """The catalog sync learnt something about a copy: queue the lag levels that changed (no RPC here)."""
        if self._lags is None:
            return
        lags = self._lags()
        now = self._clock.now()
        first = self._levels is None
        levels = self._levels if self._levels is not None else {}
        changed = False
        for exporter, seconds in lags.items():
            level = lag_level(seconds)
            if first or levels.get(exporter) != level:
                levels[exporter] = level
                lag = operations_pb2.SyncLag(level_seconds=level, seconds=seconds)
                lag.time.FromDatetime(now)
                self._lag_changes[exporter] = lag
                changed = True
        for exporter in [e for e in levels if e not in lags]:
            del levels[exporter]
            stopped = operations_pb2.SyncLag(stopped=True)
            stopped.time.FromDatetime(now)
            self._lag_changes[exporter] = stopped
            changed = True
        self._levels = levels
        if first:
            self._lag_complete = True
        if changed or first:
            self._dirty.set()
    def order(self, exporter: str, outcome: str, seconds: float | None) -> None:
        """Count one order operation (``NodeMetrics.order``'s outcomes)."""
        peer = self._peers.setdefault(exporter, _Peer())
        peer.attempts += 1
        kind = ANSWERED.get(outcome)
        if kind == "confirmed":
            peer.confirmed += 1
        elif kind == "denied":
            peer.denied += 1
        else:
            peer.errors += 1
        if seconds is not None:
            peer.counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self._dirty.set()

    def viewed(self, exporter: str) -> None:
        """Count one view of an imported offer of ``exporter`` (a count per exporter: nothing about the viewer)."""
        self._peers.setdefault(exporter, _Peer()).views += 1
        self._dirty.set()

    def breaker(self, exporter: str, to_state: str, reason: str) -> None:
        transition = operations_pb2.BreakerTransition(peer_wl=exporter, to_state=to_state, reason=reason[:128])
        transition.time.FromDatetime(self._clock.now())
        self._transitions.append(transition)
        self._dirty.set()

    def _take(self) -> _Batch:
        taken = _Batch(self._peers, self._transitions, self._since, self._lag_changes, self._lag_complete)
        self._peers, self._transitions, self._since = {}, [], self._clock.now()
        self._lag_changes, self._lag_complete = {}, False
        self._dirty.clear()
        return taken

    def _put_back(self, batch: _Batch) -> None:
        for exporter, peer in batch.peers.items():
            self._peers.setdefault(exporter, _Peer()).add(peer)
        self._transitions[:0] = batch.transitions
        self._since = batch.since
        self._lag_changes = {**batch.lags, **self._lag_changes}  # a change seen meanwhile is newer
        self._lag_complete = self._lag_complete or batch.lag_complete
        self._dirty.set()

    async def flush(self) -> bool:
        """Send what changed since the last report (True if nothing was left unsent)."""
        batch = self._take()
        peers, transitions, since = batch.peers, batch.transitions, batch.since
        if not peers and not transitions and not batch.lags and not batch.lag_complete:
            return True
        request = telemetry_service_pb2.ReportOperationsRequest(transitions=transitions,
                                                               sync_lag_complete=batch.lag_complete)
        request.window_start.FromDatetime(since)
        request.window_end.FromDatetime(self._clock.now())
        for exporter in sorted(set(peers) | set(batch.lags)):
            p = peers.get(exporter, _Peer())
            peer = operations_pb2.PeerOperations(
                exporter_wl=exporter, attempts=p.attempts, confirmed=p.confirmed, denied=p.denied, errors=p.errors,
                offer_views=p.views,
                confirmation=operations_pb2.LatencyHistogram(bounds_seconds=LATENCY_BUCKETS_S, counts=p.counts))
            if exporter in batch.lags:
                peer.sync_lag.CopyFrom(batch.lags[exporter])
            request.peers.append(peer)
        payload = request.SerializeToString(deterministic=True)
        signed = self._sign(payload) if self._sign is not None else None
        if signed is not None:
            request = telemetry_service_pb2.ReportOperationsRequest(signed=telemetry_service_pb2.SignedOperationsReport(
                payload=payload, signature=signed[0], signer_certificate_sha256=signed[1]))
        try:
            async with self._cp.lease() as channel:
                await pb_grpc.TelemetryServiceStub(channel).ReportOperations(
                    request, timeout=self.config.timeout_s, metadata=self._cp.metadata())
        except grpc.aio.AioRpcError as err:
            if err.code() is grpc.StatusCode.INVALID_ARGUMENT:
                log.error("operations report refused; dropped", extra={"fields": {"code": err.code().name}})
                return True
            self._put_back(batch)
            return False
        self.reports_sent += 1
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._clock.wait_any(stop, self._dirty)  # idle: no timer, no traffic
            if stop.is_set():
                break
            await self._clock.wait_any(stop, timeout=self.config.batch_delay_s)
            if await self.flush():
                self._backoff.reset()
            else:
                await self._clock.wait_any(stop, timeout=self._backoff.next_delay())
        await self.flush()  # a last report on shutdown


