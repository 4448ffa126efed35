"""Data-subject requests on a node: export what it holds about a person, erase it, and tell importers.

A subject is named by a trader manager's e-mail (found through the blind index, never a clear column) or by a
trader account id. Erasure replaces the account's personal data by ``[erased]`` and republishes every offer of the
account at a new feed sequence with the erased contact, so each importer's next sync overwrites its copy (the
importers hold only the masked contact and the handle, and both go). Every request is audited in
``subject_requests`` under the subject's blind index.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wl_node.catalog.offers import next_sequence
from wl_node.catalog.tables import offers
from wl_node.privacy.accounts import ERASED_MARK, Account, Contact, TraderAccounts, public_contact
from wl_node.privacy.tables import subject_requests
from xporty.trader.v1 import offer_pb2
from xwl_runtime.errors import NotFound

EXPORT, ERASE = "EXPORT", "ERASE"


@dataclass(frozen=True)
class ErasureResult:
    """What an erasure changed: the account and the offers republished (the last feed sequence written)."""

    account_id: str
    offers: int
    last_sequence: int


async def _find(conn: AsyncConnection, accounts: TraderAccounts, subject: str) -> Account | None:
    if "@" in subject:
        return await accounts.by_email(conn, subject)
    return await accounts.get(conn, subject)


async def _audit(conn: AsyncConnection, accounts: TraderAccounts, kind: str, subject: str, requested_by: str,
                 affected: int, now: dt.datetime) -> None:
    await conn.execute(sa.insert(subject_requests).values(
        kind=kind, subject_index=accounts.keyring.blind_index(subject), requested_by=requested_by,
        affected=affected, at=now))


async def export_subject(engine: AsyncEngine, accounts: TraderAccounts, subject: str, *, requested_by: str,
                         now: dt.datetime) -> dict[str, Any]:
    """Everything this node holds about ``subject`` as JSON-ready data; NOT_FOUND when it holds nothing."""
    async with engine.begin() as conn:
        account = await _find(conn, accounts, subject)
        if account is None:
            await _audit(conn, accounts, EXPORT, subject, requested_by, 0, now)
            return {"subject": subject, "trader_accounts": [], "offers": []}
        rows = (await conn.execute(
            sa.select(offers.c.offer_id, offers.c.title, offers.c.withdrawn, offers.c.created_at,
                      offers.c.updated_at).where(offers.c.trader_account_id == account.account_id)
            .order_by(offers.c.offer_id))).all()
        await _audit(conn, accounts, EXPORT, subject, requested_by, 1 + len(rows), now)
    c = account.contact
    return {
        "subject": subject,
        "trader_accounts": [{"account_id": account.account_id, "wl_id": account.wl_id,
                             "display_name": account.display_name, "status": account.status,
                             "contact": {"name": c.name, "email": c.email, "phone": c.phone}}],
        "offers": [{"offer_id": r.offer_id, "title": r.title, "withdrawn": r.withdrawn,
                    "created_at": r.created_at.isoformat(), "updated_at": r.updated_at.isoformat()} for r in rows],
        "shared_with_peers": "masked contact and opaque handle only; clear contact only through the disclosure log",
    }


async def erase_subject(engine: AsyncEngine, accounts: TraderAccounts, subject: str, *, requested_by: str,
                        now: dt.datetime) -> ErasureResult:
    """Erase ``subject``'s personal data here and republish its offers so importers' copies go too."""
    async with engine.begin() as conn:
        account = await _find(conn, accounts, subject)
        if account is None:
            raise NotFound("this node holds no trader account for the subject", reason="SUBJECT_NOT_FOUND")
        erased = public_contact(Contact(ERASED_MARK, ERASED_MARK, ERASED_MARK), "")
        rows = (await conn.execute(sa.select(offers.c.offer_id, offers.c.payload, offers.c.revision, offers.c.withdrawn)
                                   .where(offers.c.trader_account_id == account.account_id))).all()
        last = 0
        for row in rows:
            last = await next_sequence(conn)
            payload = offer_pb2.Offer.FromString(row.payload)
            payload.manager.CopyFrom(erased)
            payload.revision = row.revision + 1
            await conn.execute(sa.update(offers).where(offers.c.offer_id == row.offer_id).values(
                payload=payload.SerializeToString(), manager_name=ERASED_MARK, manager_email=ERASED_MARK,
                manager_phone=ERASED_MARK, revision=row.revision + 1, change_sequence=last, updated_at=now))
        await accounts.erase(conn, account.account_id, now)
        await _audit(conn, accounts, ERASE, subject, requested_by, 1 + len(rows), now)
    return ErasureResult(account.account_id, len(rows), last)
