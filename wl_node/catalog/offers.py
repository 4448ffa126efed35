"""The exporter's offer book: publish, update and withdraw this WL's offers, each change stamped with a feed sequence.

Every change runs in one transaction: take the next sequence from ``offer_feed`` (an UPDATE, so the row stays
locked until commit and sequences become visible in commit order), then write the offer with a bumped revision and
that sequence. A withdrawal keeps the row as a tombstone (``withdrawn``) at a new sequence, so a peer that resumes
from an older cursor learns about it. After commit the ``FeedNotifier`` wakes the peers' WatchOffers streams.

The manager's clear contact goes, encrypted, into the offer's trader account (``wl_node.privacy.accounts``) in
the same transaction; the offer row, its stored message and so the feed hold only the masked contact and the
account's opaque handle.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import sqlalchemy as sa
from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wl_node.privacy.accounts import Contact, TraderAccounts, public_contact
from xporty.common.v1 import money_pb2
from xporty.trader.v1 import offer_pb2
from xwl_runtime.clock import Clock
from xwl_runtime.errors import AlreadyExists, NotFound

from .feed import FeedNotifier
from .tables import offer_feed, offers
from .validation import ValidOffer

log = logging.getLogger(__name__)

_NEXT_SEQUENCE = (
    sa.update(offer_feed).where(offer_feed.c.feed_id == 1)
    .values(last_sequence=offer_feed.c.last_sequence + 1).returning(offer_feed.c.last_sequence)
)


async def next_sequence(conn: AsyncConnection) -> int:
    """The next feed sequence; call inside the writing transaction (the counter row stays locked until commit)."""
    return int((await conn.execute(_NEXT_SEQUENCE)).scalar_one())


def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    micros = (value - _EPOCH) // dt.timedelta(microseconds=1)
    return timestamp_pb2.Timestamp(seconds=micros // 1_000_000, nanos=(micros % 1_000_000) * 1000)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def build_offer(offer: ValidOffer, *, exporter_wl: str, revision: int, created_at: dt.datetime,
                updated_at: dt.datetime, contact: offer_pb2.TraderContact | None = None) -> offer_pb2.Offer:
    """The peer-facing message of an offer at one revision (stored serialized, so the feed never rebuilds it).

    ``contact`` is the public (masked, with handle) contact; without it the offer's contact is masked here: the
    message never carries the clear contact.
    """
    if contact is None:
        contact = public_contact(_contact(offer), "")
    return offer_pb2.Offer(
        offer_id=offer.offer_id, exporter_wl=exporter_wl, title=offer.title, description=offer.description,
        category=offer.category, unit_price=money_pb2.Money(currency=offer.currency, amount=f"{offer.unit_price:f}"),
        stock=offer.stock, image_urls=list(offer.image_urls),
        manager=contact,
        create_time=timestamp(created_at), update_time=timestamp(updated_at), revision=revision,
    )


def offer_to_proto(row: Any) -> offer_pb2.Offer:
    """An ``offers`` row as the local API serves it (stock and revision from their columns: they are the truth)."""
    msg = offer_pb2.Offer.FromString(row.payload)
    msg.stock = row.stock
    msg.revision = row.revision
    return msg


def _contact(offer: ValidOffer) -> Contact:
    return Contact(offer.manager_name, offer.manager_email, offer.manager_phone)


def _values(offer: ValidOffer, payload: offer_pb2.Offer, account_id: str) -> dict[str, Any]:
    manager = payload.manager  # masked: the clear contact lives only in the encrypted trader account
    return {
        "payload": payload.SerializeToString(), "title": offer.title, "description": offer.description,
        "category": offer.category, "currency": offer.currency, "unit_price": f"{offer.unit_price:f}",
        "stock": offer.stock, "image_urls": json.dumps(list(offer.image_urls)), "manager_name": manager.name,
        "manager_email": manager.email, "manager_phone": manager.phone, "trader_account_id": account_id,
    }


class OfferBook:
    """This WL's exportable offers (exporter side)."""

    def __init__(self, engine: AsyncEngine, clock: Clock, notifier: FeedNotifier, exporter_wl: str,
                 accounts: TraderAccounts) -> None:
        self._engine = engine
        self._accounts = accounts
        self._wl = exporter_wl
        self._clock = clock
        self._notifier = notifier

    async def publish(self, offer: ValidOffer) -> Any:
        """Create the offer; ALREADY_EXISTS if its id was ever used (tombstones keep their id)."""
        now = self._clock.now()
        try:
            async with self._engine.begin() as conn:
                taken = await conn.scalar(sa.select(offers.c.offer_id).where(offers.c.offer_id == offer.offer_id))
                if taken is not None:
                    raise AlreadyExists(f"offer {offer.offer_id} exists", metadata={"offer_id": offer.offer_id})
                seq = await next_sequence(conn)
                account_id, handle = await self._accounts.upsert(conn, _contact(offer), now)
                payload = build_offer(offer, exporter_wl=self._wl, revision=1, created_at=now, updated_at=now,
                                      contact=public_contact(_contact(offer), handle))
                await conn.execute(sa.insert(offers).values(
                    offer_id=offer.offer_id, **_values(offer, payload, account_id), revision=1, change_sequence=seq,
                    withdrawn=False, created_at=now, updated_at=now,
                ))
                row = (await conn.execute(sa.select(offers).where(offers.c.offer_id == offer.offer_id))).one()
        except sa.exc.IntegrityError as err:  # a concurrent publish of the same id won the race
            raise AlreadyExists(f"offer {offer.offer_id} exists", metadata={"offer_id": offer.offer_id}) from err
        self._notifier.bump(seq)
        log.info("offer published", extra={"fields": {"offer_id": offer.offer_id, "sequence": seq}})
        return row

    async def update(self, offer: ValidOffer) -> Any:
        """Replace a live offer's fields; NOT_FOUND if it does not exist or was withdrawn."""
        now = self._clock.now()
        async with self._engine.begin() as conn:
            current = (await conn.execute(
                sa.select(offers.c.revision, offers.c.created_at)
                .where(offers.c.offer_id == offer.offer_id, offers.c.withdrawn.is_(False))
            )).first()
            if current is None:
                raise NotFound(f"offer {offer.offer_id} not found", metadata={"offer_id": offer.offer_id})
            seq = await next_sequence(conn)
            revision = current.revision + 1
            account_id, handle = await self._accounts.upsert(conn, _contact(offer), now)
            payload = build_offer(offer, exporter_wl=self._wl, revision=revision, created_at=current.created_at,
                                  updated_at=now, contact=public_contact(_contact(offer), handle))
            await conn.execute(
                sa.update(offers).where(offers.c.offer_id == offer.offer_id)
                .values(**_values(offer, payload, account_id), revision=revision, change_sequence=seq,
                        updated_at=now)
            )
            row = (await conn.execute(sa.select(offers).where(offers.c.offer_id == offer.offer_id))).one()
        self._notifier.bump(seq)
        log.info("offer updated", extra={"fields": {"offer_id": offer.offer_id, "sequence": seq,
                                                    "revision": row.revision}})
        return row

    async def withdraw(self, offer_id: str) -> None:
        """Withdraw an offer (a tombstone at a new sequence); withdrawing twice is a no-op."""
        now = self._clock.now()
        async with self._engine.begin() as conn:
            withdrawn = await conn.scalar(sa.select(offers.c.withdrawn).where(offers.c.offer_id == offer_id))
            if withdrawn is None:
                raise NotFound(f"offer {offer_id} not found", metadata={"offer_id": offer_id})
            if withdrawn:
                return
            seq = await next_sequence(conn)
            await conn.execute(
                sa.update(offers).where(offers.c.offer_id == offer_id)
                .values(withdrawn=True, revision=offers.c.revision + 1, change_sequence=seq, updated_at=now)
            )
        self._notifier.bump(seq)
        log.info("offer withdrawn", extra={"fields": {"offer_id": offer_id, "sequence": seq}})
