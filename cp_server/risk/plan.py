"""The compensation plan of a DISABLE signal: which reverse-direction offers could cover the deficit.

When the CP disables E→I it reads, in the same transaction, I's latest offer digest for destination E (pushed
by I's node, ``cp_server/offer_digest``), values it with I's current reference rate and ranks it
(``plan_ranking``). A digest generated more than ``RiskSettings.plan_digest_max_age`` before the signal is not
used (the plan then lists no offers; ``required_reference_value`` is always set). Offers priced in another
currency than I's current one (its currency changed since the digest) are left out.

Plan offers are stored with the signal as a JSON list of string maps (``risk_signals.plan_offers``);
``compensation_offer`` turns one back into the proto.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cp_server.offer_digest.store import DigestStore
from cp_server.settings.risk import RiskSettings
from cp_server.store import schema
from xporty.cp.v1 import signal_pb2

from .ledger import dec_str
from .plan_ranking import PlanCandidate, rank

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class CompensationPlanner:
    """Builds plan offers inside the caller's transaction (one digest row and one registry row are read)."""

    def __init__(self, settings: RiskSettings) -> None:
        self._settings = settings

    async def offers(
        self, conn: AsyncConnection, *, exporter_wl: str, importer_wl: str, required: Decimal, now: dt.datetime
    ) -> list[dict[str, str]]:
        """Ranked offers ``exporter_wl`` (the compensating exporter) shows ``importer_wl``, as stored plan rows."""
        stored = await DigestStore.latest(conn, exporter_wl, importer_wl)
        if stored is None or now - stored.digest.generate_time > self._settings.plan_digest_max_age:
            return []
        wl = schema.white_labels
        row = (await conn.execute(sa.select(wl.c.currency, wl.c.reference_rate).where(wl.c.wl_id == exporter_wl))
               ).first()
        if row is None:
            return []
        try:
            rate = Decimal(row.reference_rate)
        except InvalidOperation:
            return []
        candidates = [PlanCandidate(o.offer_id, o.title, o.unit_price, o.stock)
                      for o in stored.digest.offers if o.currency == row.currency]
        ranked = rank(candidates, required=required, reference_rate=rate, max_offers=self._settings.plan_max_offers)
        digest_time = stored.digest.generate_time.isoformat()
        return [{
            "offer_id": r.candidate.offer_id, "reference_value": dec_str(r.reference_value),
            "title": r.candidate.title, "unit_reference_value": dec_str(r.unit_reference_value),
            "available_stock": str(r.candidate.stock), "unit_price": dec_str(r.candidate.unit_price),
            "currency": str(row.currency), "exporter_wl": exporter_wl, "importer_wl": importer_wl,
            "cover_quantity": str(r.cover_quantity), "digest_time": digest_time,
        } for r in ranked]


def compensation_offer(offer: Mapping[str, str]) -> signal_pb2.CompensationOffer:
    """A stored plan row as the proto (rows stored before digests existed carry only id and value)."""
    msg = signal_pb2.CompensationOffer(
        offer_id=offer.get("offer_id", ""), reference_value=offer.get("reference_value", ""),
        title=offer.get("title", ""), unit_reference_value=offer.get("unit_reference_value", ""),
        available_stock=int(offer.get("available_stock") or 0), exporter_wl=offer.get("exporter_wl", ""),
        importer_wl=offer.get("importer_wl", ""), cover_quantity=int(offer.get("cover_quantity") or 0),
    )
    if offer.get("unit_price"):
        msg.unit_price.currency = offer.get("currency", "")
        msg.unit_price.amount = offer["unit_price"]
    if offer.get("digest_time"):
        msg.digest_time.FromDatetime(dt.datetime.fromisoformat(offer["digest_time"]))
    return msg
