"""The automatic hold: a direction in pilot or expansion whose SLO figures breach over the window is held.

Every ``hold_check_interval`` the CP reads the SLO report over ``hold_window`` (``cp_server.slo``: the importers'
operational reports, per importer/exporter) and judges each direction in PILOT or EXPANSION that is not held:

* ``confirmation_p99`` of the direction above its target (0.5 s), or
* ``error_rate`` of the direction at or above its target (0.5%),

with at least ``hold_min_samples`` order attempts in the window (fewer is "no data", never a breach). The window
never reaches back before the minute after the last release of the direction's hold (``slo_since``), so a
released direction is judged on new orders only, not held again for the breach the operator just dealt with. A
breach holds
the stage in one change transaction (audited ``rollout.auto_hold`` by the CP, in both WLs' next views; a direction
whose policy says so also steps back from expansion to pilot), and in that same transaction raises an ALERT
signal to both WLs (which the webhook feature turns into ``alert.raised``) and queues the ``rollout.held`` webhook
event. Only an operator releases the hold; the watcher never promotes.

Reaction time is a global SLO figure (not per direction), so it does not hold a single direction.

The same pass is the CP's SLO evaluator: with ``breaches`` it judges every figure of the report over
``hold_window`` (global and per pair) and opens or closes SLO breaches (``cp_server.slo.breaches``: the
``slo.breach`` webhook event), whether or not any direction is in rollout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal

from cp_server.risk.engine import CP_ACTOR
from cp_server.settings.rollout import RolloutConfig
from cp_server.slo.breaches import SloBreaches
from cp_server.slo.report import Figure, SloReporter
from cp_server.store.records import World
from cp_server.store.rollout_records import Stage
from xwl_runtime.clock import Clock

from .stages import Rollouts

log = logging.getLogger(__name__)

AfterHold = Callable[[], Awaitable[None]]


class AutoHold:
    """Judges the directions in rollout against their SLO figures and holds those that breach."""

    def __init__(self, rollouts: Rollouts, world: Callable[[], World], reporter: SloReporter, clock: Clock,
                 config: RolloutConfig, *, after_hold: AfterHold | None = None,
                 breaches: SloBreaches | None = None) -> None:
        self._rollouts = rollouts
        self._world = world
        self._reporter = reporter
        self._clock = clock
        self._config = config
        self._after_hold = after_hold
        self._slo_breaches = breaches

    def _breaches(self, figures: dict[tuple[str, str], tuple[Decimal | None, int]], scope: str) -> list[str]:
        p99, samples = figures.get(("confirmation_p99", scope), (None, 0))
        rate, attempts = figures.get(("error_rate", scope), (None, 0))
        if max(samples, attempts) < self._config.hold_min_samples:
            return []
        found = []
        if p99 is not None and p99 > self._config.confirmation_p99_s:
            found.append(f"confirmation_p99 {p99} s > {self._config.confirmation_p99_s} s")
        if rate is not None and rate >= self._config.error_rate:
            found.append(f"error_rate {rate} >= {self._config.error_rate}")
        return found

    async def check_once(self) -> list[tuple[str, str]]:
        """Judge every direction in rollout once; returns the directions held by this pass."""
        candidates = [r for r in self._world().rollouts.values()
                      if not r.held and r.stage in (Stage.PILOT, Stage.EXPANSION)]
        now = self._clock.now()
        reports: dict[dt.timedelta, dict[tuple[str, str], tuple[Decimal | None, int]]] = {}
        if self._slo_breaches is not None:
            window = self._config.hold_window
            figures = await self._reporter.report(now, window)
            reports[window] = _by_key(figures)
            await self._slo_breaches.judge(figures, window, now)
        if not candidates:
            return []
        held = []
        for rollout in candidates:
            window = self._config.hold_window
            if rollout.slo_since is not None:
                window = min(window, now - rollout.slo_since)
            if window <= dt.timedelta(0):
                continue
            if window not in reports:
                reports[window] = _by_key(await self._reporter.report(now, window))
            breaches = self._breaches(reports[window], f"{rollout.importer}/{rollout.exporter}")
            if not breaches:
                continue
            minutes = max(1, round(window.total_seconds() / 60))
            reason = f"SLO breach over {minutes} min at {rollout.stage.value}: " + "; ".join(breaches)
            done = await self._rollouts.hold(CP_ACTOR, rollout.exporter, rollout.importer, held=True,
                                             reason=reason, automatic=True)
            if done.changed:
                held.append(rollout.key)
                log.warning("rollout held on SLO breach", extra={"fields": {
                    "exporter_wl": rollout.exporter, "importer_wl": rollout.importer,
                    "stage": done.value.stage.value, "reason": reason, "policy_version": done.version}})
        if held and self._after_hold is not None:
            await self._after_hold()
        return held

    async def run(self, stop: asyncio.Event) -> None:
        """Judge every ``hold_check_interval`` until ``stop``."""
        interval = self._config.hold_check_interval.total_seconds()
        while not stop.is_set():
            await self._clock.wait_any(stop, timeout=interval)
            if stop.is_set():
                return
            try:
                await self.check_once()
            except Exception:  # noqa: BLE001 - judged again next round; the loop must live on
                log.exception("rollout hold check failed")


def _by_key(figures: list[Figure]) -> dict[tuple[str, str], tuple[Decimal | None, int]]:
    return {(f.name, f.scope): (f.value, f.samples) for f in figures}
