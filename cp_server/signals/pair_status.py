"""PAIR_STATUS signals: a pair turning ACTIVE/PAUSED/BLOCKED reaches the nodes on the signal path.

The policy stream carries a pair's status too, but behind whole-view snapshots; the signal path is the one the
nodes' enforcers apply at once and acknowledge. ``PairStatusSignals`` is wired into the policy store as a status
hook (``PairPolicies.add_status_hook``), so the signal is issued in the SAME transaction as the policy change
(stored, sequenced, audited ``signal.pair_status`` with the request's correlation id, ``pg_notify`` on
PostgreSQL): a change that fails or is refused issues nothing, and a committed one always has its signal.

After the commit, ``after_commit`` (a ``ChangeRunner`` commit listener) makes this replica's signal hub load and
push it to the open WatchSignals streams; other replicas get it through the NOTIFY listener.
"""

from __future__ import annotations

import logging

from cp_server.risk.signal_hub import SignalHub
from cp_server.risk.signal_store import MAX_REASON_CHARS, SignalStore
from cp_server.store.changes import Tx
from cp_server.store.records import PairRecord, Status
from xwl_runtime import correlation

log = logging.getLogger(__name__)


class PairStatusSignals:
    """Issues one PAIR_STATUS signal per status change, in the change's transaction; publishes after commit."""

    def __init__(self, store: SignalStore, hub: SignalHub) -> None:
        self._store = store
        self._hub = hub
        self._pending: set[int] = set()  # policy versions whose change issued a signal, not yet published

    async def on_status_change(self, tx: Tx, previous: Status | None, pair: PairRecord, reason: str) -> None:
        """``PairPolicies`` status hook: store the signal in ``tx`` (concerning both WLs of the pair)."""
        text = f"pair {pair.status.value} at policy version {tx.version}" + (f": {reason}" if reason else "")
        record = await self._store.issue_pair_status(
            tx.conn, wl_a=pair.wl_a, wl_b=pair.wl_b, status=pair.status.value,
            previous=previous.value if previous is not None else None, policy_version=tx.version,
            reason=text[:MAX_REASON_CHARS], correlation_id=correlation.get() or correlation.new_correlation_id(),
            now=tx.now, actor=tx.actor,
        )
        # Published by after_commit of this version. A rolled-back change returns its version number to the next
        # change, whose commit then does one spare hub refresh: harmless.
        self._pending.add(tx.version)
        log.info("pair status signal issued", extra={"fields": {
            "wl_a": pair.wl_a, "wl_b": pair.wl_b, "status": pair.status.value, "policy_version": tx.version,
            "sequence": record.sequence, "correlation_id": record.correlation_id}})

    async def after_commit(self, version: int) -> None:
        """``ChangeRunner`` commit listener: push what committed to this replica's WatchSignals streams."""
        if self._pending:
            self._pending = set()
            await self._hub.refresh()
