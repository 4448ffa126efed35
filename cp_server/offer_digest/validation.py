"""Checks of a ReportOffersRequest against the registry, before anything is stored (all or nothing).

Every bad field is named (``digests[i].offers[j].unit_price.amount``) in one INVALID_ARGUMENT with a BadRequest
detail; the first few violations are listed, so a node with a bug sees what to fix in one answer. Who may report
is decided by the servicer (the caller's WL only); here the destinations must be the caller's registered
partners and the prices must be in the caller's own currency.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from google.protobuf import timestamp_pb2

from xporty.cp.v1 import telemetry_pb2
from xwl_runtime.errors import FieldViolation, InvalidArgument
from xwl_runtime.text import text_violation

MAX_ID_CHARS = 128
MAX_TITLE_CHARS = 200
MAX_AMOUNT_CHARS = 48
MAX_VIOLATIONS = 20
"""Violations listed in one refusal (the rest are implied by the first ones)."""
MAX_FUTURE_SKEW = dt.timedelta(minutes=5)
"""A digest may claim to be at most this far in the CP's future (clock skew between node and CP)."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class DigestOffer:
    """One offer of a digest: price in the exporter's currency, stock at generation time."""

    offer_id: str
    title: str
    currency: str
    unit_price: Decimal
    stock: int


@dataclass(frozen=True)
class Digest:
    """An exporter's offers as one destination sees them (the whole digest: it replaces the previous one)."""

    exporter_wl: str
    destination_wl: str
    generate_time: dt.datetime
    offers: tuple[DigestOffer, ...]


@dataclass(frozen=True)
class Limits:
    """Size bounds of one request."""

    max_offers: int = 200
    max_destinations: int = 256


@dataclass(frozen=True)
class ExporterTerms:
    """What the registry says about the reporting WL: its currency and its partners."""

    currency: str
    partners: frozenset[str]


def _price(text: str) -> Decimal | None:
    if not text or len(text) > MAX_AMOUNT_CHARS:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None


def _time(ts: timestamp_pb2.Timestamp) -> dt.datetime | None:
    seconds, nanos = ts.seconds, ts.nanos
    if not seconds and not nanos:
        return None
    try:
        return _EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        return None


class _Violations:
    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        if len(self.items) < MAX_VIOLATIONS:
            self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            raise InvalidArgument(f"{first.field}: {first.description}"
                                  + (f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""),
                                  violations=self.items)


def _offer(o: telemetry_pb2.DigestOffer, at: str, terms: ExporterTerms, seen: set[str],
           bad: _Violations) -> DigestOffer | None:
    ok = True
    if not o.offer_id or len(o.offer_id) > MAX_ID_CHARS:
        bad.add(f"{at}.offer_id", f"required, at most {MAX_ID_CHARS} characters")
        ok = False
    elif o.offer_id in seen:
        bad.add(f"{at}.offer_id", "listed twice in this digest")
        ok = False
    seen.add(o.offer_id)
    title = text_violation(f"{at}.title", o.title, max_chars=MAX_TITLE_CHARS)
    if title is not None:
        bad.add(title.field, title.description)
        ok = False
    if o.unit_price.currency != terms.currency:
        bad.add(f"{at}.unit_price.currency", f"must be the exporter's currency {terms.currency}")
        ok = False
    price = _price(o.unit_price.amount)
    if price is None:
        bad.add(f"{at}.unit_price.amount", f"a finite decimal > 0, at most {MAX_AMOUNT_CHARS} characters")
        ok = False
    if o.available_stock < 1:
        bad.add(f"{at}.available_stock", "must be >= 1 (leave out offers without stock)")
        ok = False
    if not ok or price is None:
        return None
    return DigestOffer(o.offer_id, o.title, o.unit_price.currency, price, int(o.available_stock))


def validate(
    exporter_wl: str, digests: Sequence[telemetry_pb2.OfferDigest], terms: ExporterTerms, limits: Limits,
    now: dt.datetime,
) -> list[Digest]:
    """The request's digests as domain values; raises ``InvalidArgument`` naming every bad field (up to 20)."""
    items = list(digests)
    if len(items) > limits.max_destinations:
        raise InvalidArgument.field("digests", f"at most {limits.max_destinations} destinations per call")
    bad = _Violations()
    out: list[Digest] = []
    destinations: set[str] = set()
    for i, d in enumerate(items):
        at = f"digests[{i}]"
        dest = d.destination_wl
        if not dest:
            bad.add(f"{at}.destination_wl", "required")
        elif dest in destinations:
            bad.add(f"{at}.destination_wl", f"{dest} is listed twice")
        elif dest == exporter_wl:
            bad.add(f"{at}.destination_wl", "a WL does not export to itself")
        elif dest not in terms.partners:
            bad.add(f"{at}.destination_wl", f"no registered pair {exporter_wl}/{dest}")
        destinations.add(dest)
        when = _time(d.generate_time)
        if when is None:
            bad.add(f"{at}.generate_time", "required")
        elif when > now + MAX_FUTURE_SKEW:
            bad.add(f"{at}.generate_time", "in the future")
        if len(d.offers) > limits.max_offers:
            bad.add(f"{at}.offers", f"at most {limits.max_offers} offers per destination")
            continue
        seen: set[str] = set()
        offers = [_offer(o, f"{at}.offers[{j}]", terms, seen, bad) for j, o in enumerate(d.offers)]
        if when is not None:
            out.append(Digest(exporter_wl, dest, when, tuple(o for o in offers if o is not None)))
    bad.raise_if_any()
    return out
