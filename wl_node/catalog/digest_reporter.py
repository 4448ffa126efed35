"""The offer digest reporter: this WL's top offers, as each destination sees them, pushed to the CP.

The CP ranks these offers in the compensation plan of a DISABLE signal (``docs/risk.md``): when this WL imported
too much from a partner P, the CP disables P → this WL and lists the offers this WL shows P, which P could buy to
bring the pair back. The CP has no catalog and never calls a node, so the node pushes a digest
(``TelemetryService.ReportOffers``).

Per destination D (every partner in the policy view), the digest is what D's catalog sync could read from this
WL's feed now: the same exporter-side rules as ``TraderService`` (``visibility.export_grant``: pair ACTIVE, imports
not frozen, D's import enabled, visible to D; each offer older than the direction's export delay), live (not
withdrawn) offers in stock and in this WL's currency, at most ``max_offers`` of them, the largest stock value
first. A destination that may see nothing gets an empty digest, which clears what the CP held for it. No seller
contact (PII) is ever sent: id, title, unit price, stock.

When: at start, every ``interval`` (``NodeSettings.offer_digest_interval``, default 60 s, which also keeps the
CP's copy fresh: the CP ignores digests older than its staleness bound), and ``debounce`` after a local offer
change or policy change (the catalog's ``FeedNotifier``). Stock moved by orders is picked up by the periodic
report: the order path is not touched. While the CP is unreachable the loop backs off with full jitter; a refusal
(old CP without the RPC, invalid digest) waits for the next period. The loop only reads the catalog and calls the
CP, off the checkout path.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import grpc
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wl_node.cp_channel import CpChannel
from wl_node.policy.state import PolicyState
from xporty.cp.v1 import telemetry_pb2, telemetry_service_pb2, telemetry_service_pb2_grpc
from xwl_runtime import correlation
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock
from xwl_runtime.component import Component
from xwl_runtime.errors import FailedPrecondition, PermissionDenied
from xwl_runtime.grpc_codes import RETRY_LATER

from .feed import FeedNotifier
from .offers import timestamp
from .tables import offers
from .visibility import export_grant

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ReporterConfig:
    """Knobs of the reporter, with their defaults."""

    interval_s: float = 60.0
    """Period of the full report (``NodeSettings.offer_digest_interval``)."""
    debounce_s: float = 1.0
    """Wait after a local change before reporting, so a burst of changes makes one report."""
    max_offers: int = 200
    """Offers per destination (the CP's default bound)."""
    timeout_s: float = 5.0
    """Deadline of one ReportOffers call."""
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    """Jittered backoff while the CP is unreachable."""


@dataclass
class ReporterStats:
    """Counters since start (logs and tests)."""

    reports: int = 0
    failures: int = 0
    last_error: str = ""
    last_digests: list[telemetry_pb2.OfferDigest] = field(default_factory=list)


def _price(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None


async def _live_offers(engine: AsyncEngine, currency: str) -> list[tuple[Any, Decimal]]:
    """Live offers in stock priced in ``currency``, with their parsed unit price, largest stock value first."""
    o = offers.c
    async with engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(o.offer_id, o.title, o.unit_price, o.stock, o.created_at)
            .where(o.withdrawn.is_(False), o.stock > 0, o.currency == currency)
        )).all()
    priced = [(r, p) for r in rows if (p := _price(r.unit_price)) is not None]
    priced.sort(key=lambda rp: (-(rp[1] * rp[0].stock), rp[0].offer_id))
    return priced


async def build_digests(
    engine: AsyncEngine, state: PolicyState, now: dt.datetime, max_offers: int
) -> list[telemetry_pb2.OfferDigest]:
    """One digest per partner in the policy view (empty for a partner that may see nothing); [] without a view."""
    view = state.current()
    own = state.white_label(state.wl_id)
    if view is None or own is None:
        return []
    partners = sorted({p.wl_b if p.wl_a == state.wl_id else p.wl_a for p in view.pairs
                       if state.wl_id in (p.wl_a, p.wl_b)})
    live = await _live_offers(engine, own.currency) if partners else []
    out: list[telemetry_pb2.OfferDigest] = []
    for partner in partners:
        digest = telemetry_pb2.OfferDigest(destination_wl=partner, generate_time=timestamp(now))
        try:
            grant = export_grant(state, partner)
        except (PermissionDenied, FailedPrecondition):
            out.append(digest)  # the partner sees nothing: an empty digest clears the CP's copy
            continue
        cutoff = now - grant.delay
        for row, price in live:
            if len(digest.offers) >= max_offers:
                break
            if row.created_at <= cutoff:
                digest.offers.add(offer_id=row.offer_id, title=row.title, available_stock=row.stock,
                                  unit_price={"currency": own.currency, "amount": format(price, "f")})
        out.append(digest)
    return out


def _content(digests: list[telemetry_pb2.OfferDigest]) -> list[tuple[str, bytes]]:
    return [(d.destination_wl, b"".join(o.SerializeToString(deterministic=True) for o in d.offers)) for d in digests]


class OfferDigestReporter:
    """Builds and reports the digests (see the module docstring)."""

    def __init__(
        self, engine: AsyncEngine, state: PolicyState, cp: CpChannel, clock: Clock, notifier: FeedNotifier,
        config: ReporterConfig | None = None, backoff: Backoff | None = None,
    ) -> None:
        self._engine = engine
        self._state = state
        self._cp = cp
        self._clock = clock
        self._notifier = notifier
        self.config = config or ReporterConfig()
        self.backoff = backoff or Backoff(base_s=self.config.backoff_base_s, cap_s=self.config.backoff_cap_s)
        """Jittered backoff while the CP is unreachable (replaceable in tests)."""
        self._last_sent: list[tuple[str, bytes]] | None = None
        self.stats = ReporterStats()

    async def report_once(self, *, force: bool = True) -> bool:
        """Build the digests and report them; False when there was nothing to send (no view, or unchanged and
        not ``force``)."""
        digests = await build_digests(self._engine, self._state, self._clock.now(), self.config.max_offers)
        if not digests:
            return False
        content = _content(digests)
        if not force and content == self._last_sent:
            return False
        token = correlation.current_correlation_id.set(correlation.new_correlation_id())
        try:
            async with self._cp.lease() as channel:
                await telemetry_service_pb2_grpc.TelemetryServiceStub(channel).ReportOffers(
                    telemetry_service_pb2.ReportOffersRequest(exporter_wl=self._state.wl_id, digests=digests),
                    timeout=self.config.timeout_s, metadata=self._cp.metadata())
        finally:
            correlation.current_correlation_id.reset(token)
        self._last_sent = content
        self.stats.reports += 1
        self.stats.last_digests = digests
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Report at start, every interval and after local changes, until ``stop`` is set."""
        force, changed = True, False
        next_due = self._clock.monotonic()
        while not stop.is_set():
            if force or changed:
                retry = await self._attempt(force=force)
                if retry is not None:
                    await self._clock.wait_any(stop, timeout=retry)
                    continue
                if force:
                    next_due = self._clock.monotonic() + self.config.interval_s
                force = changed = False
            wait = max(0.0, next_due - self._clock.monotonic())
            if await self._wait_change(stop, wait) and not stop.is_set():
                # Let a burst of changes settle into one report.
                await self._clock.wait_any(stop, timeout=self.config.debounce_s)
                changed = True
            elif self._clock.monotonic() >= next_due:
                force = True

    async def _attempt(self, *, force: bool) -> float | None:
        """One report; None when done (or refused for good), else the delay before retrying."""
        try:
            await self.report_once(force=force)
        except grpc.aio.AioRpcError as err:
            self.stats.failures += 1
            self.stats.last_error = f"{err.code().name}: {err.details() or ''}"[:200]
            if err.code() not in RETRY_LATER:  # any other refusal waits for the next period
                log.warning("the CP refused the offer digest; next try at the next period",
                            extra={"fields": {"error": self.stats.last_error}})
                self.backoff.reset()
                return None
            delay = self.backoff.next_delay()
            log.warning("offer digest report failed; backing off",
                        extra={"fields": {"error": self.stats.last_error, "delay_s": round(delay, 3)}})
            return delay
        except (sa.exc.SQLAlchemyError, OSError, RuntimeError) as err:  # store trouble, or the channel closed
            self.stats.failures += 1
            self.stats.last_error = f"{type(err).__name__}: {err}"[:200]
            delay = self.backoff.next_delay()
            log.warning("offer digest could not be built; backing off",
                        extra={"fields": {"error": self.stats.last_error, "delay_s": round(delay, 3)}})
            return delay
        self.backoff.reset()
        return None

    async def _wait_change(self, stop: asyncio.Event, timeout: float) -> bool:
        """True if the catalog's notifier fired before ``timeout`` (or ``stop`` was set)."""
        changed = self._notifier.next_change()
        await self._clock.wait_any(changed, stop, timeout=timeout)
        return changed.is_set() or stop.is_set()


NAME = "offer-digests"


@dataclass
class DigestComponent(Component):
    """The component plus its reporter (tests read ``reporter.stats``)."""

    reporter: OfferDigestReporter | None = field(default=None)


def install(
    engine: AsyncEngine, state: PolicyState, cp: CpChannel, clock: Clock, notifier: FeedNotifier,
    interval: dt.timedelta,
) -> DigestComponent:
    """The reporter's loop as a node component (wired next to the catalog in ``wl_node/app.py``)."""
    reporter = OfferDigestReporter(engine, state, cp, clock, notifier,
                                   ReporterConfig(interval_s=max(0.05, interval.total_seconds())))
    return DigestComponent(name=NAME, loops=[reporter.run], reporter=reporter)


def find(components: Iterable[Component]) -> DigestComponent | None:
    """The digest reporter's component among a node's components."""
    return next((c for c in components if isinstance(c, DigestComponent)), None)
