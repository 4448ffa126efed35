"""How often each background loop of a node wakes when there is no work (``NodeSettings.cadence``).

An idle node must cost almost nothing whatever its number of peers: every loop wakes on work (a commit, a stream
message, a signal, a kick from the code that created the work) and otherwise only on the long timers below, which
are safety nets, not the way work is found. ``docs/scaling.md`` lists each loop with its cadence and what wakes it.
Set on the command line with ``xcwl wl serve --cadence NAME=SECONDS`` (repeatable).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class IdleCadence:
    """Idle cadences of a node's loops, in seconds."""

    offer_heartbeat_s: float = 10.0
    """Exporter side: an idle WatchOffers stream sends a heartbeat this often."""
    offer_stream_timeout_s: float = 25.0
    """Importer side: a stream silent this long missed its heartbeat: pull at once and re-open it (< the TTL)."""
    offer_fallback_cap_s: float = 30.0
    """Importer side: longest pause between pulls while a peer's stream is down (the fallback backs off to it)."""
    catalog_supervisor_s: float = 30.0
    """The sync supervisor re-checks its workers this often without a policy change."""
    shipper_idle_s: float = 30.0
    """The event shipper looks at its queue this often when no commit kicked it."""
    shipper_coalesce_s: float = 0.05
    """After a kick the shipper waits this long, so a burst of commits ships as one batch."""
    reconcile_idle_s: float = 30.0
    """The reconciler looks for in-doubt checkouts this often while no checkout is PENDING."""
    reconcile_busy_s: float = 1.0
    """… and this often while some checkout is PENDING."""
    outbox_idle_s: float = 30.0
    """The compensation outbox looks for due rows this often when nothing kicked it and no retry is scheduled."""
    health_s: float = 5.0
    """The node re-evaluates its health (policy view staleness) this often."""
    peer_channel_idle_s: float = 120.0
    """A channel to a peer's TraderService for orders drops its connection after this long without an order."""

    def validate(self) -> IdleCadence:
        """Self, or ValueError naming the first cadence that is not a positive number of seconds."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ValueError(f"cadence {f.name.removesuffix('_s')} must be > 0 seconds, got {value}")
        if self.offer_stream_timeout_s <= self.offer_heartbeat_s:
            raise ValueError("cadence offer_stream_timeout must exceed offer_heartbeat")
        return self

    def with_overrides(self, pairs: list[str]) -> IdleCadence:
        """A copy with ``NAME=SECONDS`` overrides (names without the ``_s`` suffix); ValueError on a bad one."""
        names = {f.name.removesuffix("_s"): f.name for f in dataclasses.fields(self)}
        changes: dict[str, float] = {}
        for pair in pairs:
            name, sep, raw = pair.partition("=")
            if not sep or name not in names:
                raise ValueError(f"expected NAME=SECONDS with NAME one of {', '.join(sorted(names))}; "
                                 f"got {pair[:40]!r}")
            try:
                changes[names[name]] = float(raw)
            except ValueError:
                raise ValueError(f"cadence {name}: expected seconds, got {raw[:20]!r}") from None
        return dataclasses.replace(self, **changes).validate()
