"""Demo steps for trade: offers published through each node's local API, imported catalogs priced with the CP's
FX (and following a policy change), and a burst of concurrent cross-WL checkouts whose stock, orders and ledgers are
then read from both sides' stores and checked against each other."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from wl_node.catalog.tables import offers as offers_table
from wl_node.checkout.tables import checkouts as checkouts_table
from wl_node.checkout.tables import import_ledger
from wl_node.orders.tables import order_ledger
from wl_node.orders.tables import orders as orders_table
from xcwl_sdk import StorefrontClient
from xporty.common.v1 import money_pb2
from xporty.node.v1 import storefront_pb2
from xporty.trader.v1 import offer_pb2

from .demo_world import APP, CURRENCY, WLS, Demo, eventually
from .errors import CliError
from .output import table
from .render_trade import checkout_status, imported_offers_table

CATALOG_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class DemoOffer:
    wl_id: str
    offer_id: str
    title: str
    category: str
    price: str
    stock: int

    @property
    def imported_id(self) -> str:
        return f"{self.wl_id}:{self.offer_id}"


OFFERS = (
    DemoOffer("wl-a", "a-1", "Bicycle tune-up", "services", "4.00", 25),  # the burst's offer
    DemoOffer("wl-a", "a-2", "Desk lamp", "home", "15.50", 10),
    DemoOffer("wl-a", "a-3", "Toolbox rental", "tools", "10.00", 100),  # the risk step's offer
    DemoOffer("wl-b", "b-1", "Guitar lesson", "services", "20.00", 8),
    DemoOffer("wl-b", "b-2", "Ceramic mug", "home", "7.25", 40),
    DemoOffer("wl-c", "c-1", "Surfboard wax", "sports", "10.00", 50),  # the risk step's reverse trade
    DemoOffer("wl-c", "c-2", "Tent rental", "sports", "45.00", 5),
)
MANAGERS = {
    "wl-a": offer_pb2.TraderContact(name="Ana Souza", email="ana.souza@market-a.example", phone="+55 11 91234-5678"),
    "wl-b": offer_pb2.TraderContact(name="Bruno Lima", email="bruno@market-b.example", phone="+55 21 98765-4321"),
    "wl-c": offer_pb2.TraderContact(name="Carla Dias", email="carla.dias@market-c.example", phone="+351 912 345 678"),
}
BURST_OFFER = OFFERS[0]
BURST = {"wl-b": 30, "wl-c": 6}
"""Concurrent one-unit checkouts per importer on the burst's offer (36 for 25 in stock)."""


def offer_message(o: DemoOffer) -> offer_pb2.Offer:
    return offer_pb2.Offer(
        offer_id=o.offer_id, title=o.title, description=f"{o.title}, sold by {o.wl_id}", category=o.category,
        unit_price=money_pb2.Money(currency=CURRENCY[o.wl_id], amount=o.price), stock=o.stock,
        image_urls=[f"https://img.{o.wl_id}.example/{o.offer_id}.png"], manager=MANAGERS[o.wl_id],
    )


async def catalog(demo: Demo, wl_id: str, app: StorefrontClient | None = None) -> list[storefront_pb2.ImportedOffer]:
    if app is None:
        async with demo.app(wl_id) as fresh:
            return await fresh.list_imported_offers()
    return await app.list_imported_offers()


async def wait_catalog(demo: Demo, wl_id: str, ready: object, what: str) -> list[storefront_pb2.ImportedOffer]:
    """Poll ``wl_id``'s imported catalog until ``ready(offers)`` holds; the offers then."""
    seen: list[list[storefront_pb2.ImportedOffer]] = [[]]
    async with demo.app(wl_id) as app:  # one channel for the whole poll

        async def check() -> bool:
            seen[0] = await catalog(demo, wl_id, app)
            return bool(ready(seen[0]))  # type: ignore[operator]

        await eventually(check, f"{wl_id}'s catalog: {what}", CATALOG_TIMEOUT_S)
    return seen[0]


def ids(offers: list[storefront_pb2.ImportedOffer]) -> set[str]:
    return {o.imported_offer_id for o in offers}


def exported_by(*wls: str) -> set[str]:
    return {o.imported_id for o in OFFERS if o.wl_id in wls}


# --- step: publish and show the catalogs -----------------------------------------------------------------------


async def publish_offers(demo: Demo) -> None:
    for wl in WLS:
        mine = [o for o in OFFERS if o.wl_id == wl.wl_id]
        async with demo.app(wl.wl_id) as app:
            for o in mine:
                await app.publish_offer(offer_message(o))
        demo.out(f"{wl.wl_id}: spiffe://xporty/wl/{wl.wl_id}/app/{APP} published "
                 + ", ".join(f"{o.offer_id} ({o.price} {wl.currency} x {o.stock})" for o in mine))
    start = time.monotonic()
    catalogs = {}
    for wl in WLS:
        others = exported_by(*(w.wl_id for w in WLS if w.wl_id != wl.wl_id))
        catalogs[wl.wl_id] = await wait_catalog(demo, wl.wl_id, lambda offers, want=others: ids(offers) == want,
                                                "every other WL's offers")
    demo.out(f"every importer synced every offer within {(time.monotonic() - start) * 1000:.0f} ms; "
             "the manager contact is masked (the app has no PII scope):")
    for wl in WLS:
        demo.out(f"\nimported catalog of {wl.wl_id} (prices in {wl.currency})\n"
                 f"{imported_offers_table(catalogs[wl.wl_id])}")
    demo.notes["catalogs"] = catalogs


# --- step: the catalogs after the FX change and the PAUSE --------------------------------------------------------


async def catalogs_after_change(demo: Demo) -> None:
    """After wl-a/wl-b moved to FX 1.3 (fx_version 2) and wl-b/wl-c was PAUSED."""
    before = {o.imported_offer_id: o for o in demo.notes.get("catalogs", {}).get("wl-b", [])}

    def b_ready(offers: list[storefront_pb2.ImportedOffer]) -> bool:
        return ids(offers) == exported_by("wl-a") and all(o.fx_version >= 2 for o in offers)

    after_b = await wait_catalog(demo, "wl-b", b_ready, "wl-a's offers re-priced, wl-c's hidden")
    after_c = await wait_catalog(demo, "wl-c", lambda offers: ids(offers) == exported_by("wl-a"), "wl-b's hidden")
    after_a = await wait_catalog(demo, "wl-a", lambda offers: all(o.fx_version >= 2 for o in offers
                                                                  if o.source_wl == "wl-b"), "wl-b's re-priced")
    demo.out("wl-b re-prices wl-a's offers at the new FX:")
    demo.out(table(["imported_offer", "source_price", "price before", "fx before", "price now", "fx now"], [
        (o.imported_offer_id, f"{o.source_price.amount} {o.source_price.currency}",
         before[o.imported_offer_id].price.amount if o.imported_offer_id in before else "",
         before[o.imported_offer_id].fx_rate if o.imported_offer_id in before else "",
         f"{o.price.amount} {o.price.currency}", f"{o.fx_rate} (v{o.fx_version})") for o in after_b]))
    demo.out("wl-b/wl-c PAUSED: wl-b no longer shows wl-c's offers, wl-c no longer shows wl-b's:")
    for wl_id, offers in (("wl-a", after_a), ("wl-b", after_b), ("wl-c", after_c)):
        demo.out(f"\nimported catalog of {wl_id}\n{imported_offers_table(offers)}")


# --- step: the checkout burst ----------------------------------------------------------------------------------


async def buy(app: StorefrontClient, offer_id: str, key: str, quantity: int = 1) -> storefront_pb2.Checkout:
    """One member's purchase through the SDK: retried with the same key until decided (COMPLETED, FAILED or
    CANCELLED); the demo's client config lets it wait out a node that has no token for the exporter yet."""
    checkout = await app.checkout(offer_id, quantity, buyer_reference=f"member-{key}", idempotency_key=key)
    if checkout.status == storefront_pb2.CHECKOUT_STATUS_PENDING:
        raise CliError(f"checkout {key} still PENDING after {app.config.checkout_timeout_s:.0f} s")
    return checkout


async def _burst_at(demo: Demo, importer: str, count: int) -> list[storefront_pb2.Checkout]:
    async with demo.app(importer) as app:
        return list(await asyncio.gather(*(buy(app, BURST_OFFER.imported_id, f"burst-{importer}-{i}")
                                           for i in range(count))))


def _dec_sum(values: list[str]) -> Decimal:
    return sum((Decimal(v) for v in values), Decimal(0))


async def _exporter_side(demo: Demo, exporter: str, offer_id: str) -> tuple[int, list[tuple[object, ...]], list[
        tuple[object, ...]], int]:
    """(stock, orders rows, ledger rows, confirmed units) at the exporter, read from its store."""
    async with demo.store(demo.node_db(exporter)) as engine, engine.connect() as conn:
        stock = int((await conn.execute(sa.select(offers_table.c.stock).where(
            offers_table.c.offer_id == offer_id))).scalar_one())
        o = orders_table
        rows = (await conn.execute(sa.select(o.c.importer_wl, o.c.status, o.c.reason, o.c.quantity, o.c.total)
                                   .where(o.c.offer_id == offer_id))).all()
        lg = order_ledger
        ledger = (await conn.execute(sa.select(lg.c.counterparty_wl, lg.c.kind, lg.c.quantity, lg.c.amount,
                                               lg.c.currency).where(lg.c.offer_id == offer_id))).all()
    grouped: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    for r in rows:
        grouped.setdefault((r.importer_wl, r.status, r.reason), []).append((r.quantity, r.total))
    order_rows: list[tuple[object, ...]] = [
        (imp, status, reason or "-", len(v), sum(q for q, _ in v), _dec_sum([t for _, t in v]))
        for (imp, status, reason), v in sorted(grouped.items())]
    lgrouped: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    for r in ledger:
        lgrouped.setdefault((r.counterparty_wl, r.kind, r.currency), []).append((r.quantity, r.amount))
    ledger_rows: list[tuple[object, ...]] = [
        (cp, kind, len(v), sum(q for q, _ in v), f"{_dec_sum([a for _, a in v])} {cur}")
        for (cp, kind, cur), v in sorted(lgrouped.items())]
    confirmed = sum(r.quantity for r in rows if r.status == "CONFIRMED")
    return stock, order_rows, ledger_rows, confirmed


async def _importer_side(demo: Demo, importer: str, imported_id: str) -> tuple[Counter[str], int, str, str]:
    """(checkouts by status, units in the import ledger, local total, source total) at an importer."""
    async with demo.store(demo.node_db(importer)) as engine, engine.connect() as conn:
        c = checkouts_table
        statuses = Counter(r.status for r in (await conn.execute(
            sa.select(c.c.status).where(c.c.imported_offer_id == imported_id))).all())
        il = import_ledger
        rows = (await conn.execute(sa.select(il.c.quantity, il.c.amount, il.c.currency, il.c.source_amount,
                                             il.c.source_currency)
                                   .join(c, c.c.checkout_id == il.c.checkout_id)
                                   .where(c.c.imported_offer_id == imported_id))).all()
    units = sum(r.quantity for r in rows)
    local = f"{_dec_sum([r.amount for r in rows])} {rows[0].currency}" if rows else "0"
    source = f"{_dec_sum([r.source_amount for r in rows])} {rows[0].source_currency}" if rows else "0"
    return statuses, units, local, source


async def checkout_burst(demo: Demo) -> None:
    o = BURST_OFFER
    total = sum(BURST.values())
    demo.out(f"{total} members buy 1 x {o.imported_id} ({o.title}, {o.stock} in stock) at the same time: "
             + ", ".join(f"{n} at {wl}" for wl, n in BURST.items()))
    start = time.monotonic()
    results = await asyncio.gather(*(_burst_at(demo, wl, n) for wl, n in BURST.items()))
    took = time.monotonic() - start
    completed_total = 0
    for (wl, _), checkouts in zip(BURST.items(), results, strict=True):
        outcome = Counter((checkout_status(c.status), c.reason) for c in checkouts)
        completed_total += outcome[("COMPLETED", "")]
        demo.out(f"{wl}: " + ", ".join(f"{n} {status}{' ' + reason if reason else ''}"
                                       for (status, reason), n in sorted(outcome.items())))
    demo.out(f"all {total} checkouts decided in {took * 1000:.0f} ms")

    stock, order_rows, ledger_rows, confirmed = await _exporter_side(demo, o.wl_id, o.offer_id)
    demo.out(f"\nexporter {o.wl_id}: stock of {o.offer_id} {o.stock} -> {stock}; orders:")
    demo.out(table(["importer", "status", "reason", "orders", "units", "total"], order_rows))
    demo.out(f"exporter {o.wl_id}: export ledger")
    demo.out(table(["counterparty", "kind", "entries", "units", "amount"], ledger_rows))
    imported_units = 0
    rows = []
    for wl in BURST:
        statuses, units, local, source = await _importer_side(demo, wl, o.imported_id)
        imported_units += units
        rows.append((wl, statuses.get("COMPLETED", 0), statuses.get("FAILED", 0), statuses.get("CANCELLED", 0),
                     statuses.get("PENDING", 0), units, local, source))
    demo.out("importers: checkouts and import ledger")
    demo.out(table(["importer", "completed", "failed", "cancelled", "pending", "units", "paid locally",
                    "source value"], rows))
    consistent = confirmed == imported_units == completed_total == o.stock - stock and stock >= 0
    demo.out(f"confirmed at the exporter {confirmed} = completed at the importers {completed_total} = imported "
             f"units {imported_units} = stock sold {o.stock - stock}: {'consistent' if consistent else 'MISMATCH'}")
    if not consistent:
        raise CliError("the burst's orders, checkouts and stock do not add up")
    demo.notes["burst_confirmed"] = confirmed
