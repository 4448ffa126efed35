"""The node's policy agent: keeps the node's view in step with the CP and survives the CP being away.

States (see ``docs/node.md``)::

    START ──load LKG──▶ CONNECTING ──first message──▶ STREAMING ──stream breaks──▶ BACKOFF ──▶ CONNECTING …
                              ▲                                                        │
                              └─────────────── while not STREAMING: pull every TTL ◀───┘

* STREAMING: ``WatchPolicies`` is open with ``known_version`` = the served version. Snapshots are validated and
  applied; heartbeats and same-version snapshots only confirm (``PolicyState.confirm``).
* BACKOFF: jittered exponential backoff capped at ``settings.reconnect_cap``; a certificate rotation reopens the
  stream at once on the new channel.
* Pull fallback: every ``settings.policy_pull_interval`` (TTL) while not streaming, ``GetPolicies`` with
  ``known_version``; ``not_modified`` confirms. A heartbeat announcing a newer version than the served one (a
  missed snapshot) triggers an immediate pull.

Applying a view: validate → ``PolicyState.apply`` (serve) → persist last-known-good (atomic, fsynced) →
``ReportPolicyStatus``: the CP is told a version is applied only once it is durable on the node.
A view that fails validation is reported as rejected and the last good view stays. The same version again changes
nothing: no listener call, no rewrite (the confirmation time is persisted at most every max_staleness/4).

The signed audit checkpoint that views and heartbeats carry goes to the ``CheckpointKeeper`` (``checkpoint.py``),
independently of the view's version: the keeper alone decides whether it is kept.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import timestamp_pb2

from wl_node import capabilities
from wl_node.cp_channel import CpChannel
from wl_node.settings import NodeSettings
from xporty.cp.v1 import audit_pb2, policy_pb2, policy_service_pb2, policy_service_pb2_grpc
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock
from xwl_runtime.loops import supervise_stream

from .checkpoint import CheckpointKeeper
from .lkg import LastKnownGoodStore, LkgCorrupt
from .state import PolicyState
from .validate import ViewRejected, validate_view

log = logging.getLogger(__name__)

REPORT_TIMEOUT_S = 5.0
"""Deadline of ReportPolicyStatus; a failed report is resent after the next successful contact."""
PULL_TIMEOUT_CAP_S = 10.0
"""Upper bound of the GetPolicies deadline (the deadline is the TTL, at least 1 s, at most this)."""
MAX_REPORTED_ERROR_CHARS = 1024
"""Rejection messages are cut to this length (the CP refuses reports with errors beyond 4096 characters)."""
CONFIRM_PERSIST_FRACTION = 4
"""The persisted confirmation time is refreshed at most every max_staleness / this."""

Observer = Callable[[], Awaitable[object]]


def _timestamp(when: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if when is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


class PolicyAgent:
    """Streams, pulls, validates, applies, persists and reports the node's policy view."""

    def __init__(
        self,
        settings: NodeSettings,
        state: PolicyState,
        cp: CpChannel,
        clock: Clock,
        lkg: LastKnownGoodStore,
        *,
        backoff: Backoff | None = None,
        checkpoints: CheckpointKeeper | None = None,
    ) -> None:
        self._settings = settings
        self.checkpoints = checkpoints
        """Keeps the CP's highest signed audit head (None: not kept, e.g. without TLS)."""
        self._state = state
        self._cp = cp
        self._clock = clock
        self._lkg = lkg
        cap = settings.reconnect_cap.total_seconds()
        self._backoff = backoff or Backoff(base_s=min(0.2, cap), cap_s=cap)
        self._ttl_s = settings.policy_pull_interval.total_seconds()
        self._confirm_persist_every = settings.policy_max_staleness / CONFIRM_PERSIST_FRACTION
        self._lock = asyncio.Lock()  # stream and pull may deliver views concurrently
        self._report_lock = asyncio.Lock()  # one report in flight: stream and pull finishing together send one
        self._observers: list[Observer] = []
        self._rotated = asyncio.Event()
        self._pull_now = asyncio.Event()
        self._handling: asyncio.Future[None] | None = None
        cp.add_rotation_listener(self._rotated.set)
        self._applied_at: dt.datetime | None = None
        self._persisted_confirmed_at: dt.datetime | None = None
        self._rejected_version = 0
        self._rejected_error = ""
        self._report_due = False
        self.cp_version = 0
        """The CP's current version of this node's view, as last acknowledged in a report (drift = it − served)."""

    # --- wiring ----------------------------------------------------------------------------------------------
    def add_observer(self, observer: Observer) -> None:
        """``observer()`` is awaited after every change of freshness: apply, confirm, stream up or down."""
        self._observers.append(observer)

    async def _notify(self) -> None:
        for observer in list(self._observers):
            await observer()

    @property
    def rejected_version(self) -> int:
        """The last version refused by validation (0 if none)."""
        return self._rejected_version

    # --- start-up --------------------------------------------------------------------------------------------
    async def load_last_known_good(self) -> bool:
        """Serve the persisted view, if any, before the CP is contacted. True when one was loaded."""
        try:
            persisted = await self._lkg.load_async()
        except LkgCorrupt as err:
            moved = self._lkg.quarantine()
            log.error("last-known-good policy file unusable; starting without a view",
                      extra={"fields": {"error": str(err), "moved_to": str(moved)}})
            return False
        if persisted is None:
            return False
        try:
            validate_view(persisted.view, self._settings.wl_id)
        except ViewRejected as err:
            moved = self._lkg.quarantine()
            log.error("last-known-good policy view invalid; starting without a view",
                      extra={"fields": {"error": str(err), "moved_to": str(moved)}})
            return False
        await self._state.apply(persisted.view, confirmed_at=persisted.confirmed_at)
        self._applied_at = persisted.confirmed_at
        self._persisted_confirmed_at = persisted.confirmed_at
        self._report_due = True  # tell the CP what we serve once it is reachable
        log.info("serving last-known-good policy view",
                 extra={"fields": {"version": persisted.view.version,
                                   "confirmed_at": persisted.confirmed_at.isoformat()}})
        await self._notify()
        return True

    # --- background loops ----------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Stream and pull until ``stop`` is set."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch_loop(stop), name="policy-watch")
                group.create_task(self._pull_loop(stop), name="policy-pull")
        finally:
            self._lkg.close()

    async def _watch_loop(self, stop: asyncio.Event) -> None:
        await supervise_stream(self._watch_session, stop=stop, rotated=self._rotated, backoff=self._backoff,
                               after_session=self._after_session, name="policy-watch-session", clock=self._clock)

    async def _after_session(self, session: asyncio.Task[None]) -> None:
        await self._finish_handling()
        self._log_session_end(session)
        if self._state.stream_connected:
            self._state.stream_connected = False
            await self._notify()

    async def _finish_handling(self) -> None:
        """Wait for a message still being handled after its session was cancelled, and surface its failure."""
        handling = self._handling
        if handling is None or handling.done():
            return
        await asyncio.wait({handling})
        if not handling.cancelled() and handling.exception() is not None:
            log.error("handling a policy message failed", exc_info=handling.exception())

    def _log_session_end(self, session: asyncio.Task[None]) -> None:
        if session.cancelled():
            return
        err = session.exception()
        if err is None:
            log.info("policy stream closed by the CP")
        elif isinstance(err, grpc.aio.AioRpcError):
            log.warning("policy stream broken",
                        extra={"fields": {"code": err.code().name, "details": err.details() or ""}})
        else:
            log.error("policy stream failed", exc_info=err)

    async def _watch_session(self) -> None:
        request = policy_service_pb2.WatchPoliciesRequest(
            wl_id=self._settings.wl_id, known_version=self._state.version
        )
        async with self._cp.lease() as channel:
            stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
            # No deadline on a watch: it lives as long as the connection; keepalive detects a dead peer.
            call = stub.WatchPolicies(request, metadata=self._cp.metadata())
            async for message in call:
                if not self._state.stream_connected:
                    self._state.stream_connected = True
                    self._backoff.reset()
                    log.info("policy stream connected", extra={"fields": {"known_version": request.known_version}})
                # Shielded: a rotation or stop must not cut an apply between persisting and reporting;
                # the watch loop waits for it before reconnecting or returning.
                self._handling = asyncio.ensure_future(self._on_stream_message(message))
                await asyncio.shield(self._handling)

    async def _on_stream_message(self, message: policy_service_pb2.WatchPoliciesResponse) -> None:
        kind = message.WhichOneof("event")
        if kind == "snapshot":
            await self.handle_view(message.snapshot)  # serve first; the checkpoint's fsync is off that path
            await self._offer_checkpoint(message.snapshot)
        elif kind == "heartbeat":
            await self._offer_checkpoint(message.heartbeat)
            await self._on_heartbeat(message.heartbeat.version)
        await self._after_contact()

    async def _on_heartbeat(self, version: int) -> None:
        if version == self._state.version:
            await self._confirm(version)
        elif version > self._state.version and version != self._rejected_version:
            log.warning("heartbeat announces a newer version than served; pulling",
                        extra={"fields": {"served": self._state.version, "announced": version}})
            self._pull_now.set()

    async def _pull_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._clock.wait_any(stop, self._pull_now, timeout=self._ttl_s)
            if stop.is_set():
                break
            requested = self._pull_now.is_set()
            self._pull_now.clear()
            if requested or not self._state.stream_connected:
                await self.pull_once()

    async def pull_once(self) -> bool:
        """One GetPolicies with ``known_version``; True when the CP answered."""
        request = policy_service_pb2.GetPoliciesRequest(
            wl_id=self._settings.wl_id, known_version=self._state.version
        )
        timeout = max(1.0, min(PULL_TIMEOUT_CAP_S, self._ttl_s))
        try:
            async with self._cp.lease() as channel:
                stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
                response = await stub.GetPolicies(request, timeout=timeout, metadata=self._cp.metadata())
        except grpc.aio.AioRpcError as err:
            log.info("policy pull failed", extra={"fields": {"code": err.code().name}})
            return False
        if response.not_modified:
            await self._confirm(response.version)
        else:
            await self.handle_view(response.view)
            await self._offer_checkpoint(response.view)
        await self._after_contact()
        return True

    async def _offer_checkpoint(self, carrier: policy_pb2.PolicyView | policy_service_pb2.Heartbeat) -> None:
        if self.checkpoints is None or not carrier.HasField("audit_checkpoint"):
            return
        checkpoint: audit_pb2.AuditCheckpoint = carrier.audit_checkpoint
        try:
            await self.checkpoints.offer(checkpoint)
        except OSError:
            log.exception("could not persist the audit checkpoint")

    # --- applying ------------------------------------------------------------------------------------------
    async def handle_view(self, view: policy_pb2.PolicyView) -> None:
        """Validate, persist and apply ``view`` (idempotent per version); marks a report as due."""
        async with self._lock:
            served = self._state.version
            if self._state.current() is not None and view.version == served:
                await self._confirm_locked(view.version)
                return
            if view.version < served:
                log.warning("CP sent an older view than served; ignored",
                            extra={"fields": {"served": served, "received": view.version}})
                return
            if view.version == self._rejected_version:
                return  # already refused and reported
            try:
                validate_view(view, self._settings.wl_id)
            except ViewRejected as err:
                self._rejected_version, self._rejected_error = view.version, str(err)
                log.error("policy view rejected; keeping the last good one",
                          extra={"fields": {"version": view.version, "served": served, "error": str(err)}})
                self._report_due = True  # sent by _after_contact, right after this message
                return
            now = self._clock.now()
            # Serve first, persist second: the fsyncs are off the path to serving the new view. The CP still
            # hears "applied" only once the file is durable, because the report is sent by _after_contact after
            # this method returns. A crash in between restarts from the previous last-known-good view, which
            # the CP never saw reported as superseded; the stream then delivers the newer view again.
            try:
                await self._state.apply(view, confirmed_at=now)
            except Exception:  # noqa: BLE001 - a component's listener failing must not stop the agent
                log.exception("a policy listener failed", extra={"fields": {"version": view.version}})
            self._applied_at = now
            await self._notify()
            try:
                await self._lkg.save(view, now, now)
                self._persisted_confirmed_at = now
            except OSError:
                # Serving the newer view beats refusing it; a restart would fall back to an older LKG.
                log.exception("could not persist last-known-good policy view",
                              extra={"fields": {"version": view.version}})
            log.info("policy view applied", extra={"fields": {"version": view.version, "previous": served}})
            self._report_due = True  # sent by _after_contact, right after this message (and after the fsync)

    async def _confirm(self, version: int) -> None:
        async with self._lock:
            await self._confirm_locked(version)

    async def _confirm_locked(self, version: int) -> None:
        self._state.confirm(version)
        confirmed_at = self._state.confirmed_at
        view = self._state.current()
        if view is None or confirmed_at is None or view.version != version:
            return
        stale_on_disk = (
            self._persisted_confirmed_at is None
            or confirmed_at - self._persisted_confirmed_at >= self._confirm_persist_every
        )
        if stale_on_disk:
            try:
                await self._lkg.save(view, confirmed_at, self._clock.now())
                self._persisted_confirmed_at = confirmed_at
            except OSError:
                log.exception("could not persist the policy confirmation time")
        await self._notify()

    # --- reporting -----------------------------------------------------------------------------------------
    async def _after_contact(self) -> None:
        """After each message or pull: report what changed, or resend a report that failed earlier.

        Reports go one at a time. The due flag is claimed before the request is built, so a change made while a
        report is in flight marks a new one due (sent by the contact that made the change), and a second contact
        finishing with nothing new sends nothing."""
        async with self._report_lock:
            if self._report_due:
                self._report_due = False
                await self._report()

    async def _report(self) -> None:
        applied = self._state.version
        rejected = self._rejected_version if self._rejected_version > applied else 0
        request = policy_service_pb2.ReportPolicyStatusRequest(
            applied_version=applied,
            rejected_version=rejected,
            error=self._rejected_error[:MAX_REPORTED_ERROR_CHARS] if rejected else "",
            apply_time=_timestamp(self._applied_at),
            software_version=capabilities.software_version(), contract_version=capabilities.CONTRACT_VERSION,
            features=capabilities.FEATURES,
        )
        try:
            async with self._cp.lease() as channel:
                stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
                response = await stub.ReportPolicyStatus(
                    request, timeout=REPORT_TIMEOUT_S, metadata=self._cp.metadata()
                )
        except asyncio.CancelledError:
            self._report_due = True  # not known to have arrived: the next contact sends it
            raise
        except grpc.aio.AioRpcError as err:
            self._report_due = True
            log.info("policy status report failed; will resend", extra={"fields": {"code": err.code().name}})
            return
        self.cp_version = response.current_version
