"""The importer's sync job: one worker per partner whose policy lets this WL import its offers.

Per exporter (``_Worker``):

1. first a full sync: ``ListOffers`` pages from an empty cursor (big pages), each page and the new cursor written
   in one transaction (``ImportedCatalog.apply_page``), so a crash mid-page resumes from the last committed page;
2. then incremental: a ``WatchOffers`` stream wakes the worker on every exporter commit; each wake pulls
   "changes after the cursor". While the stream is healthy (a message — a change or a heartbeat — at least every
   ``stream_timeout_s``) the worker does not poll at all, so an idle mesh costs nothing per peer but the
   exporter's heartbeats. A missed heartbeat or a broken stream starts the pull fallback at once: a pull, the
   stream re-opened, and pulls every ``poll_interval_s`` backing off (jittered) up to ``fallback_cap_s`` until the
   stream delivers again;
3. ``CURSOR_EXPIRED`` (the exporter's visibility terms changed) restarts a full sync (mark-and-sweep);
   ``PERMISSION_DENIED`` (the exporter refuses us) hides its offers at once; other failures back off with jitter.

The supervisor (``CatalogSync``) listens to the ``PolicyState``: an exporter that stops being importable (pair
PAUSED/BLOCKED, imports frozen, import disabled, visibility lost) has its worker stopped and its offers hidden
inside the listener, without waiting for the exporter; a new FX version wakes the worker, which re-prices the
whole snapshot of that pair. Every unary call has an explicit deadline.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import sqlalchemy as sa

from wl_node.policy.state import PolicyState
from xporty.cp.v1 import policy_pb2
from xporty.trader.v1 import trader_service_pb2 as pb
from xporty.trader.v1 import trader_service_pb2_grpc as pb_grpc
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.tls import TlsMaterial, secure_channel

from .snapshot import ImportedCatalog
from .visibility import ImportTerms, import_terms, importable_exporters

log = logging.getLogger(__name__)

ChannelFactory = Callable[[str, TlsMaterial | None, Identity], grpc.aio.Channel]
"""(endpoint, TLS material, the identity the server must prove) -> channel."""


@dataclass(frozen=True)
class SyncSettings:
    """Knobs of the sync job."""

    page_size: int = 5000
    """Changes per ListOffers page (the exporter caps it at 5000)."""
    poll_interval_s: float = 1.0
    """First pull period of the fallback while the stream is down (it backs off up to ``fallback_cap_s``)."""
    stream_timeout_s: float = 25.0
    """A healthy stream delivers a message at least this often (the exporter beats every 10 s); past it the
    stream counts as broken: pull at once, re-open it, fall back to polling. Keep it below the TTL (30 s)."""
    fallback_cap_s: float = 30.0
    """Longest pause between fallback pulls while the stream stays down (the TTL)."""
    supervisor_interval_s: float = 30.0
    """How often the supervisor re-checks its workers without a policy change (restarts a worker that ended)."""
    rpc_timeout_s: float = 10.0
    """Deadline of each ListOffers call."""
    backoff_base_s: float = 0.1
    backoff_cap_s: float = 30.0
    """Jittered backoff after a failure (exponential, full jitter). Capped at the TTL, not a few seconds: while a
    mesh starts, a node's workers for peers not up yet would otherwise dial N−1 dead endpoints every few seconds."""


@dataclass
class SyncStats:
    """Counters since start (tests and the mesh bench read them)."""

    pulls: int = 0
    """Pull rounds (each is one or more ListOffers pages)."""
    missed_heartbeats: int = 0
    """Streams re-opened because no message came within ``stream_timeout_s``."""


class _Worker:
    """Sync of one exporter's offers; runs until ``stop`` is set or the exporter stops being importable."""

    def __init__(self, sync: CatalogSync, exporter: str) -> None:
        self.sync = sync
        self.exporter = exporter
        self.wake = asyncio.Event()
        self.stop = asyncio.Event()
        self._backoff = Backoff(sync.settings.backoff_base_s, sync.settings.backoff_cap_s, sync.rng)
        self._channel: grpc.aio.Channel | None = None
        self._endpoint = ""
        self._watch: asyncio.Task[None] | None = None
        self._stream_up = False
        self._last_message = 0.0
        self._fallback = Backoff(sync.settings.poll_interval_s, sync.settings.fallback_cap_s, sync.rng)
        self.terms: ImportTerms | None = None
        """The import terms of the last pull: a policy change that leaves them as they are needs no pull."""
        self.started_at = sync.clock.monotonic()
        self.current_at: float | None = None
        """Monotonic time this node last knew its copy current: the end of a pull that reached the exporter's
        head, or a heartbeat of the open stream while no change was waiting (the stream announces every change
        after our cursor, so a beat with nothing pending proves nothing changed)."""
        self._pulling = False

    def lag_s(self) -> float:
        """Seconds since the copy was last known current (since the worker started, before its first pull)."""
        known = self.current_at if self.current_at is not None else self.started_at
        return max(0.0, self.sync.clock.monotonic() - known)

    def _importable(self) -> bool:
        return not self.stop.is_set() and import_terms(self.sync.state, self.exporter) is not None

    async def _connect(self, endpoint: str) -> pb_grpc.TraderServiceStub:
        if endpoint != self._endpoint or self._channel is None:
            await self._close()
            self._channel = self.sync.channel_factory(endpoint, self.sync.tls, Identity.wl(self.exporter))
            self._endpoint = endpoint
            self._open_watch()
        return pb_grpc.TraderServiceStub(self._channel)

    def _open_watch(self) -> None:
        assert self._channel is not None
        self._watch = asyncio.create_task(self._watch_loop(pb_grpc.TraderServiceStub(self._channel)),
                                          name=f"catalog-watch-{self.exporter}")

    async def _cancel_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            # gather, not suppress(CancelledError): a cancellation of THIS task while it waits must propagate.
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        self._stream_up = False

    def stream_healthy(self) -> bool:
        """True while the WatchOffers stream is open and delivered (or opened) within ``stream_timeout_s``."""
        return self._stream_up and self._stream_deadline() > self.sync.clock.monotonic()

    def _stream_deadline(self) -> float:
        return self._last_message + self.sync.settings.stream_timeout_s

    async def _close(self) -> None:
        await self._cancel_watch()
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _watch_loop(self, stub: pb_grpc.TraderServiceStub) -> None:
        """Keep a WatchOffers stream open; a change wakes the worker to pull, a heartbeat only proves liveness."""
        backoff = Backoff(self.sync.settings.backoff_base_s, self.sync.settings.backoff_cap_s, self.sync.rng)
        clock = self.sync.clock
        while not self.stop.is_set():
            cursor = (await self.sync.catalog.load_cursor(self.exporter)).cursor
            try:
                # Opened against our cursor: the exporter announces at once anything after it, so the stream
                # counts as healthy from here until the first beat is due.
                self._stream_up, self._last_message = True, clock.monotonic()
                async for msg in stub.WatchOffers(pb.WatchOffersRequest(cursor=cursor)):
                    self._last_message = clock.monotonic()
                    backoff.reset()
                    if not msg.heartbeat:
                        self.wake.set()
                    elif self.current_at is not None and not self._pulling and not self.wake.is_set():
                        self.current_at = self._last_message
                        self.sync.touched()
            except grpc.aio.AioRpcError as err:
                log.debug("offer watch ended", extra={"fields": {"exporter": self.exporter,
                                                                 "code": err.code().name}})
            self._stream_up = False
            self.wake.set()  # let the pull find out what changed (expired cursor, refusal, outage)
            await clock.sleep(backoff.next_delay())

    async def _pull(self, stub: pb_grpc.TraderServiceStub) -> None:
        """Pages until the exporter has nothing more after our cursor.

        The next page is requested while the current one is written (its cursor is known from the response), so
        the exporter's read and the transfer overlap the importer's transaction; a failed write cancels it.
        """
        catalog, settings = self.sync.catalog, self.sync.settings

        def fetch(cursor: str) -> asyncio.Task[pb.ListOffersResponse]:
            request = pb.ListOffersRequest(cursor=cursor, page_size=settings.page_size)
            return asyncio.ensure_future(stub.ListOffers(request, timeout=settings.rpc_timeout_s))

        self.sync.stats.pulls += 1
        state = await catalog.load_cursor(self.exporter)
        terms = self.terms = import_terms(self.sync.state, self.exporter)
        if terms is not None and state.exists and state.fx_version != terms.fx_version:
            await catalog.reprice(self.exporter, terms)
            state = await catalog.load_cursor(self.exporter)
        pending = fetch(state.cursor)
        try:
            while True:
                resp = await pending
                terms = import_terms(self.sync.state, self.exporter)
                if terms is None or self.stop.is_set():
                    return
                if resp.has_more:
                    pending = fetch(resp.next_cursor)
                written = await catalog.apply_page(self.exporter, terms, state, resp.changes, resp.next_cursor,
                                                   resp.has_more, still_importable=self._importable)
                if resp.changes:
                    log.debug("offer page applied", extra={"fields": {"exporter": self.exporter, "rows": written,
                                                                      "changes": len(resp.changes)}})
                if not resp.has_more:
                    self.current_at = self.sync.clock.monotonic()
                    return
                if state.cursor != resp.next_cursor:  # the page was dropped (hidden meanwhile): start over
                    return
        finally:
            if not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def run(self) -> None:
        try:
            while self._importable():
                terms = import_terms(self.sync.state, self.exporter)
                assert terms is not None
                self.wake.clear()
                delay = -1.0
                try:
                    stub = await self._connect(terms.endpoint)
                    self._pulling = True
                    try:
                        await self._pull(stub)
                    finally:
                        self._pulling = False
                    self._backoff.reset()
                except grpc.aio.AioRpcError as err:
                    delay = await self._on_error(err)
                except sa.exc.SQLAlchemyError:
                    log.exception("offer sync could not write; retrying", extra={"fields": {"exporter": self.exporter}})
                    delay = self._backoff.next_delay()
                self.sync.touched()  # a pull ended, well or not: the copy's lag may have changed level
                if delay < 0:
                    await self._rest()
                else:
                    await self._wait(delay)
        finally:
            await self._close()

    async def _rest(self) -> None:
        """After a good pull: return when the next pull is due.

        With a healthy stream that is only on a change (or stop, or a policy update): heartbeats push the deadline
        on without waking us. A deadline passing means a missed heartbeat: re-open the stream and pull. With the
        stream down, the fallback period (backing off to ``fallback_cap_s``) elapses first.
        """
        while True:
            was_up = self._stream_up
            if await self._wait(self._idle_delay()):
                return
            if self.stream_healthy():
                continue  # heartbeats arrived meanwhile: nothing to do
            if was_up and self._stream_up:
                await self._stream_missed()
            return

    def _idle_delay(self) -> float:
        """Until the next heartbeat is overdue while the stream is healthy; else the fallback's next period."""
        if self.stream_healthy():
            self._fallback.reset()
            return max(0.001, self._stream_deadline() - self.sync.clock.monotonic())
        ceiling = min(self.sync.settings.fallback_cap_s,
                      self.sync.settings.poll_interval_s * (2 ** min(self._fallback.attempt, 30)))
        self._fallback.attempt += 1
        return self.sync.rng.uniform(ceiling / 2, ceiling)  # half jitter: the fallback must not stall at ~0

    async def _stream_missed(self) -> None:
        """A heartbeat did not come: the stream may be dead without knowing it. Re-open it; the loop pulls now."""
        self.sync.stats.missed_heartbeats += 1
        log.info("offer stream missed its heartbeat; pulling and re-opening it",
                 extra={"fields": {"exporter": self.exporter}})
        await self._cancel_watch()
        if self._channel is not None:
            self._open_watch()

    async def _on_error(self, err: grpc.aio.AioRpcError) -> float:
        remote = decode_rpc_error(err)
        fields = {"exporter": self.exporter, "code": remote.code.name, "reason": remote.reason}
        if remote.code == grpc.StatusCode.FAILED_PRECONDITION and remote.reason == "CURSOR_EXPIRED":
            log.info("exporter expired our cursor; full sync", extra={"fields": fields})
            await self.sync.catalog.restart_full_sync(self.exporter)
            return 0.0
        if remote.code == grpc.StatusCode.PERMISSION_DENIED:
            # The exporter's view refuses us (maybe before ours says so): show nothing from it meanwhile.
            log.info("exporter refuses our import; hiding its offers", extra={"fields": fields})
            await self.sync.catalog.hide(self.exporter, f"exporter:{remote.reason}")
        else:
            log.warning("offer sync failed; retrying", extra={"fields": fields})
        return self._backoff.next_delay()

    async def _wait(self, delay: float) -> bool:
        """Wait up to ``delay`` seconds; True when woken (a change, a policy update, stop), False on timeout."""
        if delay <= 0 or self.wake.is_set():
            return True
        await self.sync.clock.wait_any(self.wake, self.stop, timeout=delay)
        return self.wake.is_set() or self.stop.is_set()


class CatalogSync:
    """Supervisor of the per-exporter workers; ``run`` is the node's background loop."""

    def __init__(self, state: PolicyState, catalog: ImportedCatalog, clock: Clock, tls: TlsMaterial | None, *,
                 settings: SyncSettings | None = None, channel_factory: ChannelFactory | None = None,
                 rng: random.Random | None = None) -> None:
        self.state = state
        self.catalog = catalog
        self.clock = clock
        self.tls = tls
        self.settings = settings or SyncSettings()
        self.channel_factory: ChannelFactory = channel_factory or (
            lambda target, tls, expected: secure_channel(target, tls, expected=expected))
        self.rng = rng or random.Random()
        self._workers: dict[str, tuple[_Worker, asyncio.Task[None]]] = {}
        self._changed = asyncio.Event()
        self.stats = SyncStats()
        self.on_activity: Callable[[], None] | None = None
        """Called when a worker learnt something about its copy or a worker started or ended (the operations
        reporter re-checks the lag levels: ``OperationsReporter.sync_activity``)."""
        state.add_listener(self.on_policy)

    def touched(self) -> None:
        if self.on_activity is not None:
            self.on_activity()

    def lags(self) -> dict[str, float]:
        """Sync lag in seconds per exporter this node imports from now (``xcwl_catalog_sync_lag_seconds``)."""
        return {exporter: worker.lag_s() for exporter, (worker, _task) in list(self._workers.items())}

    async def on_policy(self, view: policy_pb2.PolicyView) -> None:
        """PolicyState listener: hide what may no longer be shown, at once; wake the supervisor for the rest."""
        importable = importable_exporters(self.state)
        for exporter, (worker, _) in list(self._workers.items()):
            if exporter not in importable:
                worker.stop.set()
                worker.wake.set()
            elif import_terms(self.state, exporter) != worker.terms:
                worker.wake.set()  # a new FX version or endpoint: re-price / reconnect now
        for exporter in await self.catalog.known_exporters():
            if exporter not in importable:
                await self.catalog.hide(exporter, "policy")
        self._changed.set()

    def _reconcile(self) -> None:
        importable = importable_exporters(self.state)
        before = set(self._workers)
        for exporter, (_worker, task) in list(self._workers.items()):
            if task.done():
                del self._workers[exporter]
        for exporter in importable:
            if exporter not in self._workers:
                worker = _Worker(self, exporter)
                task = asyncio.create_task(worker.run(), name=f"catalog-sync-{exporter}")
                task.add_done_callback(_log_crash)
                # A worker that ends (stopped by a policy change, or crashed) wakes the supervisor at once: if the
                # exporter is importable again meanwhile, its new worker starts now, not at the periodic re-check.
                task.add_done_callback(lambda _task: self._changed.set())
                self._workers[exporter] = (worker, task)
                log.info("catalog sync started", extra={"fields": {"exporter": exporter}})
        if set(self._workers) != before:
            self.touched()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: keep one worker per importable exporter."""
        for exporter in await self.catalog.known_exporters():
            if exporter not in importable_exporters(self.state):
                await self.catalog.hide(exporter, "policy")
        try:
            while not stop.is_set():
                self._changed.clear()
                self._reconcile()
                # Also re-check now and then: a worker that ended on its own is restarted here.
                await self.clock.wait_any(self._changed, stop, timeout=self.settings.supervisor_interval_s)
        finally:
            for worker, _ in self._workers.values():
                worker.stop.set()
                worker.wake.set()
            tasks = [t for _, t in self._workers.values()]
            if tasks:
                await asyncio.wait(tasks, timeout=5)
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            self._workers.clear()


def _log_crash(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    err = task.exception()
    if err is not None:
        log.error("catalog sync worker crashed", exc_info=err, extra={"fields": {"worker": task.get_name()}})
