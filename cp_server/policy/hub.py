"""The change hub: one in-memory snapshot of the policy world per version, and the wake-up of every stream.

* A change committed by this process awaits ``catch_up(version)`` (``ChangeRunner`` commit listener), so its RPC
  answers once this replica serves the new version.
* A change committed by another CP replica arrives as a PostgreSQL NOTIFY on ``settings.notify_channel``
  (payload = version), received by the policy component's ``xwl_runtime.notify.NotifyListener``, which calls
  ``refresh``; after every (re)connect it refreshes with no hint, so the hub re-checks the version (notifications
  sent while nobody listened are lost).
* As a safety net (a lost notification, or another process on the same SQLite file) the stored version is read
  every ``RESYNC_INTERVAL_S``.
* With a ``Checkpointer``, each installed snapshot carries a signed checkpoint of the audit head read in the same
  snapshot as its world (so it covers every audit record of its version), signed once per head; the head is
  re-read on every resync tick: audited changes that do not bump the policy version (enrollments, signals) reach
  nodes through the heartbeats' ``checkpoint``.

On a dirty mark the reload loop loads the world once (coalescing marks that arrive meanwhile): fully the first
time, then incrementally (only rows changed since the installed version, see ``store.world``); it installs the
result only if its version is newer, then wakes every waiting stream. Views are built lazily per WL and cached per
snapshot, so 50 streams of one WL cost one build; the proto form of each WL and pair record is kept across
snapshots (``ViewBuilder``), so a change re-converts only the records it touched. Until the first full load
succeeds the hub is not ready: nothing is served (no empty or partial view after a restart) and health stays
NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.audit.checkpoint import Checkpointer, read_head
from cp_server.store.records import World
from cp_server.store.versions import current_version
from cp_server.store.world import load_world
from xporty.cp.v1 import audit_pb2, identity_pb2, policy_pb2
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock
from xwl_runtime.errors import Unavailable

from .view import ViewBuilder

log = logging.getLogger(__name__)

RESYNC_INTERVAL_S = 5.0
"""How often the stored version is re-read even without a change signal."""
LOAD_BACKOFF_CAP_S = 3.0
CATCH_UP_TIMEOUT_S = 5.0
"""How long a change RPC waits for its own version to be installed before answering anyway."""


@dataclass
class _Snapshot:
    world: World
    checkpoint: audit_pb2.AuditCheckpoint | None = None
    views: dict[str, policy_pb2.PolicyView | None] = field(default_factory=dict)


class PolicyHub:
    """Holds the current world snapshot, reloads it on change, and lets streams wait for the next version."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        token_keys: Sequence[identity_pb2.VerificationKey],
        *,
        resync_interval_s: float = RESYNC_INTERVAL_S,
        checkpoints: Checkpointer | None = None,
    ) -> None:
        self._engine = engine
        self._checkpoints = checkpoints
        self._checkpoint: audit_pb2.AuditCheckpoint | None = None
        self._clock = clock
        self._views = ViewBuilder(token_keys)
        self._resync_interval_s = resync_interval_s
        self._snapshot: _Snapshot | None = None
        self._dirty = asyncio.Event()
        self._changed = asyncio.Event()
        self._closed = False
        self.ready = asyncio.Event()
        """Set once the first full world load succeeded."""
        self.loads = 0
        """Number of world loads installed (tests and benchmarks check coalescing with it)."""

    # --- reading -------------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """Version of the installed snapshot (0 before the first load)."""
        return self._snapshot.world.version if self._snapshot is not None else 0

    @property
    def checkpoint(self) -> audit_pb2.AuditCheckpoint | None:
        """The latest signed audit head (None without a checkpointer or before the first load)."""
        return self._checkpoint

    @property
    def closed(self) -> bool:
        return self._closed

    def world(self) -> World:
        """The installed world; UNAVAILABLE before the first full load."""
        snap = self._snapshot
        if snap is None:
            raise Unavailable("the control plane is still loading its policy state", reason="CP_NOT_READY")
        return snap.world

    def view(self, wl_id: str) -> policy_pb2.PolicyView | None:
        """The current view of ``wl_id`` (cached per version), None if the WL is not registered."""
        snap = self._snapshot
        if snap is None:
            raise Unavailable("the control plane is still loading its policy state", reason="CP_NOT_READY")
        if wl_id not in snap.views:
            snap.views[wl_id] = self._views.build(snap.world, wl_id, snap.checkpoint)
        return snap.views[wl_id]

    async def wait_for_change(self, after_version: int, timeout: float) -> None:
        """Return when the version passes ``after_version``, the hub closes, or after ``timeout`` seconds."""
        if self.version > after_version or self._closed:
            return
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout=max(0.0, timeout))
        except TimeoutError:
            pass

    def next_change(self) -> asyncio.Event:
        """An event set when the next snapshot is installed (or the hub closes)."""
        return self._changed

    # --- signals -------------------------------------------------------------------------------------------
    async def refresh(self, hint: str | None = None) -> None:
        """A NOTIFY from another replica (``hint``: the version it committed) or a reconnection (None)."""
        self.mark_dirty(_payload_version(hint) if hint is not None else None)

    def mark_dirty(self, version: int | None = None) -> None:
        """A change to ``version`` (None: unknown) was committed somewhere; reload unless already installed."""
        if version is not None and version <= self.version:
            return
        self._dirty.set()

    async def catch_up(self, version: int, timeout: float = CATCH_UP_TIMEOUT_S) -> None:
        """Mark ``version`` dirty and wait (bounded) until it is installed: read-your-writes on this replica."""
        self.mark_dirty(version)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.version < version and not self._closed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("policy hub did not catch up in time", extra={"fields": {"version": version}})
                return
            await self.wait_for_change(self.version, remaining)

    def close(self) -> None:
        """Stop serving: wake every stream so it ends (clients reconnect, possibly to another replica)."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # --- loops -----------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Load the world until it succeeds, then follow changes until ``stop`` is set."""
        await self._reload_loop(stop)

    async def _reload_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff(base_s=0.1, cap_s=LOAD_BACKOFF_CAP_S)
        self._dirty.set()  # the first load
        while not stop.is_set():
            await self._clock.wait_any(stop, self._dirty, timeout=self._resync_interval_s)
            if stop.is_set():
                break
            forced = self._dirty.is_set()
            self._dirty.clear()
            try:
                if forced or await self._stored_version() > self.version:
                    await self._load()
                else:
                    await self._refresh_checkpoint()
                backoff.reset()
            except (SQLAlchemyError, OSError) as err:
                delay = backoff.next_delay()
                log.warning("policy world load failed; retrying",
                            extra={"fields": {"error": str(err), "retry_in_s": round(delay, 3)}})
                self._dirty.set()
                await self._clock.wait_any(stop, timeout=delay)

    async def _stored_version(self) -> int:
        async with self._engine.connect() as conn:
            return await current_version(conn)

    async def _load(self) -> None:
        base = self._snapshot.world if self._snapshot is not None else None
        world = await load_world(self._engine, self._clock.now(), base)
        if base is not None and world.version <= base.version:
            return
        if world.audit_head is not None:  # read in the world's snapshot: it covers every record of that version
            self._sign_checkpoint(*world.audit_head)
        self._snapshot = _Snapshot(world, self._checkpoint)
        self.loads += 1
        if not self.ready.is_set():
            log.info("policy world loaded", extra={"fields": {"version": world.version,
                                                              "white_labels": len(world.white_labels),
                                                              "pairs": len(world.pairs)}})
            self.ready.set()
        self._wake()

    async def _refresh_checkpoint(self) -> None:
        """Re-read the audit head; sign a new checkpoint only when it moved."""
        if self._checkpoints is None:
            return
        async with self._engine.connect() as conn:
            sequence, head = await read_head(conn)
        self._sign_checkpoint(sequence, head)

    def _sign_checkpoint(self, sequence: int, head: str) -> None:
        """Sign a checkpoint of ``(sequence, head)`` unless the current one has it: one signature per head, shared
        by every view and heartbeat."""
        if self._checkpoints is None:
            return
        current = self._checkpoint
        if current is None or (current.sequence, current.head_hash) != (sequence, head):
            self._checkpoint = self._checkpoints.sign(sequence, head)


def _payload_version(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        return None
