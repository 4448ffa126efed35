"""Disclosure of a clear trader contact to a peer WL, and the access log that records every request.

The exporter owns its trader's personal data: a peer gets the clear contact behind a handle only when this node's
settings grant that WL (``contact_grants``), and every request, granted or refused, lands in
``contact_disclosures`` with the caller, the purpose it gave, the correlation id and the time. The refused row is
written in its own transaction before PERMISSION_DENIED is raised, so a refusal is logged too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from xporty.trader.v1 import offer_pb2
from xwl_runtime import correlation
from xwl_runtime.clock import Clock
from xwl_runtime.errors import InvalidArgument, NotFound, PermissionDenied
from xwl_runtime.fieldcrypt import Keyring
from xwl_runtime.text import human_text

from .accounts import ACTIVE, TraderAccounts
from .tables import contact_disclosures

MAX_HANDLE_CHARS, MAX_PURPOSE_CHARS = 64, 200
PURPOSE_AAD = "contact_disclosures.purpose"
"""The purpose is free text a caller typed (it may name people): encrypted like every personal column."""


@dataclass(frozen=True)
class DisclosureRecord:
    """One row of the access log."""

    at: dt.datetime
    caller: str
    handle: str
    account_id: str
    purpose: str
    granted: bool
    correlation_id: str


class ContactDisclosure:
    """Answers GetTraderContact for this exporter and keeps the access log."""

    def __init__(self, engine: AsyncEngine, accounts: TraderAccounts, clock: Clock, *,
                 grants: frozenset[str]) -> None:
        self._engine = engine
        self._accounts = accounts
        self._clock = clock
        self._grants = grants

    async def disclose(self, caller_wl: str, handle: str, purpose: str) -> offer_pb2.TraderContact:
        """The clear contact behind ``handle`` for ``caller_wl``; PERMISSION_DENIED unless granted (logged either
        way); NOT_FOUND for an unknown or erased handle."""
        if not handle or len(handle) > MAX_HANDLE_CHARS or not handle.isascii() or not handle.isprintable():
            raise InvalidArgument.field("handle", "not a contact handle from this exporter's feed")
        purpose = human_text("purpose", purpose, max_chars=MAX_PURPOSE_CHARS)
        granted = caller_wl in self._grants
        async with self._engine.begin() as conn:
            account = await self._accounts.by_handle(conn, handle)
            await conn.execute(sa.insert(contact_disclosures).values(
                handle=handle, account_id=account.account_id if account else "", caller=caller_wl,
                purpose=self._accounts.keyring.encrypt(purpose, PURPOSE_AAD),
                granted=granted and account is not None and account.status == ACTIVE,
                correlation_id=correlation.get(), at=self._clock.now()))
        if not granted:
            raise PermissionDenied(f"WL {caller_wl} is not granted clear trader contacts by this exporter",
                                   reason="CONTACT_NOT_GRANTED")
        if account is None or account.status != ACTIVE:
            raise NotFound("no trader contact behind this handle", reason="CONTACT_NOT_FOUND")
        c = account.contact
        return offer_pb2.TraderContact(name=c.name, email=c.email, phone=c.phone, handle=handle)


async def access_log(engine: AsyncEngine, keyring: Keyring, *, limit: int = 1000) -> Sequence[DisclosureRecord]:
    """The newest ``limit`` entries of the access log, newest first."""
    t = contact_disclosures.c
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(contact_disclosures).order_by(t.id.desc()).limit(limit))).all()
    return [DisclosureRecord(r.at, r.caller, r.handle, r.account_id, keyring.decrypt(r.purpose, PURPOSE_AAD),
                             r.granted, r.correlation_id) for r in rows]
