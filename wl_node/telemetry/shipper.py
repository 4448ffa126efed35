"""The shipper: signs queued events with the node's certificate key and publishes them to the CP, in order.

One loop per node. Each round: adopt new ``ledger_outbox`` rows into the queue, read the oldest ``PENDING``
events (sequence order), sign them, call ``TelemetryService.PublishEvents`` with a deadline, then mark the batch:
accepted and duplicate events ``SENT``, refused ones ``REJECTED`` with the CP's reason (logged, never resent). A
trust refusal fails the whole call and names one event (``ErrorInfo.metadata["index"]``): that event is marked
``REJECTED`` and the rest goes out in the next round.
Exactly once: an event stays ``PENDING`` until the CP answered for it, and a resend after a lost answer is a
duplicate the CP drops by ``event_id``. While the CP is unreachable the loop backs off with full jitter (capped),
so nothing is lost and the next batch after recovery starts at the oldest unsent event.

The signing key follows certificate rotation: the CP channel's rotation listener marks the key stale and the next
batch reloads the pair from the PKI directory the renewer wrote (an event signed by the previous certificate is
still accepted by the CP, so a batch in flight during a rotation is not lost either).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncEngine

from wl_node.cp_channel import CpChannel
from xporty.cp.v1 import telemetry_pb2, telemetry_service_pb2, telemetry_service_pb2_grpc
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.event_signing import certificate_sha256, sign, sign_bytes
from xwl_runtime.tls import TlsMaterial

from . import queue as q

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShipperConfig:
    """Knobs of the shipper, with their defaults."""

    batch_size: int = 500
    """Events per PublishEvents call (the CP accepts up to 5,000)."""
    publish_timeout_s: float = 5.0
    """Deadline of one PublishEvents call."""
    idle_interval_s: float = 30.0
    """Pause between rounds when the queue is empty and nobody kicked: a safety net only, since every writer of
    events kicks (the transaction runner after each commit, the enforcer after an acknowledgement)."""
    coalesce_s: float = 0.05
    """After a kick, wait this long before the round, so a burst of commits ships as one batch."""
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 3.0
    """Jittered backoff while the CP is unreachable or the store fails."""
    retention: dt.timedelta = dt.timedelta(days=1)
    """SENT rows older than this are pruned (the CP keeps the events)."""


@dataclass(frozen=True)
class _Key:
    key: ec.EllipticCurvePrivateKey
    cert_pem: bytes
    fingerprint: str


class _Signer:
    """The node's current certificate key, reloaded after a rotation.

    Used from the shipper's worker thread (events) and from the event loop (the operations report): the key, its
    certificate and fingerprint are swapped as one object, so a signer never pairs a new key with an old name.
    """

    def __init__(self, load: Callable[[], TlsMaterial | None]) -> None:
        self._load = load
        self._current: _Key | None = None
        self._stale = True

    def mark_stale(self) -> None:
        self._stale = True

    def _key(self) -> _Key | None:
        if not self._stale:
            return self._current
        material = self._load()
        current = None
        if material is not None:  # None: --insecure-dev, no key; the CP refuses unsigned events (counted there)
            key = serialization.load_pem_private_key(material.pair.key_pem, password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError("event signing needs the node's ECDSA certificate key")
            current = _Key(key, material.pair.cert_pem, certificate_sha256(material.pair.cert_pem))
        self._current, self._stale = current, False
        return current

    def sign_bytes(self, payload: bytes) -> tuple[bytes, str] | None:
        """(DER signature over ``payload``, the certificate's fingerprint), or None without a key (insecure dev)."""
        current = self._key()
        if current is None:
            return None
        return sign_bytes(payload, current.key), current.fingerprint

    def sign_all(self, payloads: list[bytes]) -> list[telemetry_pb2.SignedEvent]:
        """Sign every payload (runs in a worker thread: ECDSA costs tens of µs per event)."""
        current = self._key()
        if current is None:
            return [telemetry_pb2.SignedEvent(payload=p) for p in payloads]
        return [sign(telemetry_pb2.LedgerEvent.FromString(p), current.key, current.cert_pem,
                     fingerprint=current.fingerprint) for p in payloads]


@dataclass
class ShipperStats:
    """Counters since start (for logs, reports and tests)."""

    sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    failures: int = 0
    last_error: str = ""


class Shipper:
    """Ships the telemetry queue to the CP (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        cp: CpChannel,
        clock: Clock,
        material: Callable[[], TlsMaterial | None],
        *,
        config: ShipperConfig | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._engine = engine
        self._cp = cp
        self._clock = clock
        self._config = config or ShipperConfig()
        self._signer = _Signer(material)
        self._backoff = backoff or Backoff(base_s=self._config.backoff_base_s, cap_s=self._config.backoff_cap_s)
        self._wake = asyncio.Event()
        self._last_prune: dt.datetime | None = None
        self.stats = ShipperStats()
        cp.add_rotation_listener(self._signer.mark_stale)

    def sign_bytes(self, payload: bytes) -> tuple[bytes, str] | None:
        """Sign other reports of this node (the operations report) with the key that signs its events."""
        return self._signer.sign_bytes(payload)

    def kick(self) -> None:
        """Ship now (e.g. right after a transaction enqueued an event) instead of at the next idle tick."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Ship until ``stop`` is set."""
        while not stop.is_set():
            try:
                shipped = await self.ship_once()
            except (grpc.aio.AioRpcError, sa.exc.SQLAlchemyError, OSError, ValueError) as err:
                self.stats.failures += 1
                self.stats.last_error = _describe(err)
                delay = self._backoff.next_delay()
                log.warning("telemetry shipping failed; backing off", extra={"fields": {
                    "error": self.stats.last_error, "delay_s": round(delay, 3)}})
                await self._clock.wait_any(stop, timeout=delay)
                continue
            self._backoff.reset()
            if shipped < self._config.batch_size:
                await self._clock.wait_any(stop, self._wake, timeout=self._config.idle_interval_s)
                if self._wake.is_set() and not stop.is_set():
                    await self._clock.wait_any(stop, timeout=self._config.coalesce_s)
                self._wake.clear()

    async def ship_once(self) -> int:
        """One round: adopt the outbox, send the oldest batch, mark it. Returns the number of events answered."""
        now = self._clock.now()
        # Read first: an idle round must not take SQLite's write lock away from the order path.
        async with self._engine.connect() as conn:
            waiting = await q.outbox_waiting(conn)
        if waiting:
            async with self._engine.begin() as conn:
                await q.adopt_outbox(conn, now, self._config.batch_size)
        async with self._engine.connect() as conn:
            batch = await q.pending(conn, self._config.batch_size)
        if not batch:
            await self._maybe_prune(now)
            return 0
        signed = await asyncio.to_thread(self._signer.sign_all, [e.payload for e in batch])
        async with self._cp.lease() as channel:
            stub = telemetry_service_pb2_grpc.TelemetryServiceStub(channel)
            try:
                response = await stub.PublishEvents(
                    telemetry_service_pb2.PublishEventsRequest(events=signed),
                    timeout=self._config.publish_timeout_s, metadata=self._cp.metadata())
            except grpc.aio.AioRpcError as err:
                index = _refused_index(err, len(batch))
                if index is None:
                    raise
                # The CP refused the whole batch for one event (trust refusal: not owned, not canonical,
                # conflicting): set that one aside and resend the rest next round.
                reason = decode_rpc_error(err).reason or err.code().name
                self.stats.rejected += 1
                async with self._engine.begin() as conn:
                    await q.mark_rejected(conn, batch[index].sequence, reason, self._clock.now())
                log.error("the CP refused an event; kept as REJECTED", extra={"fields": {
                    "event_id": batch[index].event_id, "kind": batch[index].kind,
                    "sequence": batch[index].sequence, "reason": reason}})
                return 1
        refused = {r.index: r.reason or "REJECTED" for r in response.rejected}
        # Counted on the CP's answer (before marking), so a reader who sees the rows SENT sees the counts too.
        self.stats.sent += response.accepted
        self.stats.duplicates += response.duplicates
        self.stats.rejected += len(refused)
        done = self._clock.now()
        async with self._engine.begin() as conn:
            await q.mark_sent(conn, [e.sequence for i, e in enumerate(batch) if i not in refused], done)
            for index, reason in refused.items():
                if 0 <= index < len(batch):
                    await q.mark_rejected(conn, batch[index].sequence, reason, done)
        for index, reason in refused.items():
            if 0 <= index < len(batch):
                log.error("the CP refused an event; kept as REJECTED", extra={"fields": {
                    "event_id": batch[index].event_id, "kind": batch[index].kind,
                    "sequence": batch[index].sequence, "reason": reason}})
        return len(batch)

    async def _maybe_prune(self, now: dt.datetime) -> None:
        if self._last_prune is not None and now - self._last_prune < dt.timedelta(minutes=10):
            return
        self._last_prune = now
        async with self._engine.begin() as conn:
            await q.prune_sent(conn, now - self._config.retention)


_BATCH_REFUSALS = frozenset({grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT,
                             grpc.StatusCode.ALREADY_EXISTS})


def _refused_index(err: grpc.aio.AioRpcError, size: int) -> int | None:
    """The batch position of the event a batch-fatal refusal names (``ErrorInfo.metadata["index"]``), if any."""
    if err.code() not in _BATCH_REFUSALS:
        return None
    text = (decode_rpc_error(err).metadata or {}).get("index", "")
    if not text.isdigit() or int(text) >= size:
        return None
    return int(text)


def _describe(err: BaseException) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details() or ''}"[:200]
    return f"{type(err).__name__}: {err}"[:200]
