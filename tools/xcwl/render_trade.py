"""Human renderings of the node's catalog and checkouts and of the CP's risk reports, shared by commands and the demo.

Contacts are printed as the server sent them: the local API masks them unless the caller holds the PII scope,
and nothing here unmasks or logs them.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import timestamp_pb2

from xporty.common.v1 import money_pb2
from xporty.cp.v1 import analytics_pb2, signal_pb2
from xporty.node.v1 import storefront_pb2
from xporty.trader.v1 import offer_pb2

from .output import table
from .render import seconds


def money(m: money_pb2.Money) -> str:
    """``12.50 XPY-A``."""
    return f"{m.amount} {m.currency}".strip()


def when(ts: timestamp_pb2.Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return ""
    return ts.ToDatetime().isoformat(timespec="seconds") + "Z"


def contact(c: offer_pb2.TraderContact) -> str:
    return " ".join(part for part in (c.name, c.email, c.phone) if part)


def imported_offers_table(offers: Iterable[storefront_pb2.ImportedOffer]) -> str:
    """Per imported offer: source price, converted price, FX used, stock, availability, manager (as served)."""
    return table(
        ["imported_offer", "title", "source_price", "price", "fx", "fx_version", "stock", "available", "manager"],
        [(o.imported_offer_id, o.title, money(o.source_price), money(o.price), o.fx_rate, o.fx_version, o.stock,
          "yes" if o.available else "NO", contact(o.manager)) for o in offers],
    )


def offer_text(o: offer_pb2.Offer) -> str:
    return (f"offer {o.exporter_wl}:{o.offer_id} revision {o.revision}: {o.title!r} ({o.category}) "
            f"{money(o.unit_price)} x {o.stock} in stock")


CHECKOUT_PREFIX = "CHECKOUT_STATUS_"


def checkout_status(value: int) -> str:
    return storefront_pb2.CheckoutStatus.Name(value).removeprefix(CHECKOUT_PREFIX)


def checkout_text(c: storefront_pb2.Checkout) -> str:
    line = (f"checkout {c.checkout_id}: {checkout_status(c.status)} {c.quantity} x {c.imported_offer_id} "
            f"total {money(c.total)}")
    if c.order_id:
        line += f", order {c.order_id}"
    if c.reason:
        line += f", reason {c.reason}"
    return f"{line} (correlation {c.correlation_id})"


LEVEL_PREFIX = "ALERT_LEVEL_"


def level_name(value: int) -> str:
    return analytics_pb2.AlertLevel.Name(value).removeprefix(LEVEL_PREFIX)


def percent(utilisation: str) -> str:
    """``0.8`` → ``80.0%`` (``Infinity`` stays as is)."""
    try:
        return f"{float(utilisation) * 100:.1f}%"
    except ValueError:
        return utilisation


def balances_table(balances: Iterable[analytics_pb2.PairBalance]) -> str:
    rows = []
    for b in balances:
        ttl = f"{seconds(b.time_to_limit):.0f}" if b.HasField("time_to_limit") else ""
        rows.append((b.wl_a, b.wl_b, b.exports_a_to_b, b.exports_b_to_a, b.net_delta, b.limit,
                     percent(b.utilisation), b.trend_per_hour, ttl, level_name(b.level)))
    return table(["wl_a", "wl_b", "a_to_b", "b_to_a", "net_delta", "limit", "utilisation", "trend_per_h",
                  "to_limit_s", "level"], rows)


def alerts_table(alerts: Iterable[analytics_pb2.Alert]) -> str:
    return table(
        ["alert", "pair", "level", "utilisation", "raised", "open", "correlation_id"],
        [(a.alert_id, f"{a.wl_a}/{a.wl_b}", level_name(a.level), percent(a.utilisation), when(a.raise_time),
          "yes" if a.open else "no", a.correlation_id) for a in alerts],
    )


def signal_kind(value: int) -> str:
    return signal_pb2.SignalKind.Name(value).removeprefix("SIGNAL_KIND_")


def signal_source(value: int) -> str:
    return signal_pb2.SignalSource.Name(value).removeprefix("SIGNAL_SOURCE_")


def signals_table(signals: Iterable[signal_pb2.Signal]) -> str:
    """The signals, then the plan offers of each signal that has some."""
    signals = list(signals)
    text = table(
        ["seq", "kind", "source", "direction", "issued", "reason", "compensate", "plan_offers"],
        [(s.sequence, signal_kind(s.kind), signal_source(s.source), f"{s.exporter_wl} -> {s.importer_wl}",
          when(s.issue_time), s.reason, s.plan.required_reference_value, len(s.plan.offers) or "")
         for s in signals],
    )
    plans = [f"compensation plan of signal #{s.sequence}:\n{plan_offers_table(s.plan.offers)}"
             for s in signals if s.plan.offers]
    return "\n\n".join([text, *plans])


def plan_offers_table(offers: Iterable[signal_pb2.CompensationOffer]) -> str:
    """A compensation plan's offers, best first: what the importer of the disabled direction could export."""
    return table(
        ["rank", "exporter", "offer", "title", "unit_price", "unit_ref", "stock", "stock_ref", "cover_qty",
         "digest_time"],
        [(i, f"{o.exporter_wl} -> {o.importer_wl}" if o.exporter_wl else "", o.offer_id, o.title,
          money(o.unit_price), o.unit_reference_value, o.available_stock, o.reference_value, o.cover_quantity,
          when(o.digest_time)) for i, o in enumerate(offers, 1)],
    )


def signal_text(s: signal_pb2.Signal) -> str:
    line = (f"signal #{s.sequence} {signal_kind(s.kind)} {s.exporter_wl} -> {s.importer_wl} "
            f"({signal_source(s.source)}): {s.reason}")
    if s.plan.required_reference_value:
        line += f"; compensation: {s.importer_wl} must export {s.plan.required_reference_value} (reference unit)"
        if s.plan.offers:
            line += (f"; {s.importer_wl}'s offers that could cover it, best first:\n"
                     f"{plan_offers_table(s.plan.offers)}")
        else:
            line += f" (no recent offer digest from {s.importer_wl} for {s.exporter_wl})"
    return line
