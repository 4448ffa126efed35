"""Retention: past the period the buyer reference of settled checkouts (and their sales) is anonymised; the trade
record stays, recent checkouts are untouched, and the pass is audited."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from tests.wl_node.checkout.harness import Importer
from tests.wl_node.privacy.conftest import BUYER
from wl_node.checkout.retention import ANONYMISED, anonymise_before
from wl_node.checkout.tables import checkouts, import_ledger
from wl_node.privacy.tables import subject_requests
from xporty.node.v1 import storefront_pb2
from xwl_runtime import db


async def test_old_buyer_references_are_anonymised_and_the_trade_stays(importer: Importer, importer_url: str) -> None:
    done = [await importer.checkout(f"old-{i}", buyer=BUYER) for i in range(3)]
    assert all(c.status == storefront_pb2.CHECKOUT_STATUS_COMPLETED for c in done)
    engine = db.create_engine(importer_url)
    try:
        now = dt.datetime.now(dt.UTC)
        assert await anonymise_before(engine, now - dt.timedelta(days=30), now) == 0  # nothing that old yet
        recent = await importer.checkout("recent", buyer=BUYER)
        async with engine.begin() as conn:  # age the first three: created 31 days ago
            await conn.execute(sa.update(checkouts).where(checkouts.c.idem_key.like("old-%"))
                               .values(created_at=now - dt.timedelta(days=31)))
        assert await anonymise_before(engine, now - dt.timedelta(days=30), now) == 3
        async with engine.connect() as conn:
            rows = {r.idem_key: r for r in (await conn.execute(sa.select(checkouts))).all()}
            sales = (await conn.execute(sa.select(import_ledger.c.checkout_id, import_ledger.c.buyer_reference,
                                                  import_ledger.c.amount))).all()
            audit = (await conn.execute(sa.select(subject_requests.c.kind, subject_requests.c.affected))).all()
        assert {k: r.buyer_reference for k, r in rows.items() if k.startswith("old-")} == {
            f"old-{i}": ANONYMISED for i in range(3)}
        assert rows["recent"].buyer_reference.startswith("enc1:")  # untouched, still encrypted
        assert all(r.status == "COMPLETED" and r.total == "25.00" for r in rows.values())  # the trade stays
        old_ids = {rows[f"old-{i}"].checkout_id for i in range(3)}
        assert {s.checkout_id for s in sales if s.buyer_reference == ANONYMISED} == old_ids
        assert all(s.amount for s in sales) and len(sales) == 4
        assert [tuple(a) for a in audit] == [("RETENTION", 3)]
        assert (await importer.get(done[0].checkout_id)).buyer_reference == ANONYMISED
        assert (await importer.get(recent.checkout_id)).buyer_reference == BUYER
    finally:
        await engine.dispose()
