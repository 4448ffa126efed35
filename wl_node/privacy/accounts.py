"""Trader accounts: the clear manager contact, encrypted at rest, and the masked form that leaves the node.

An offer's manager contact is stored once, in the trader account it names (``account_id`` derived from the blind
index of the manager's e-mail, so republishing with the same manager reuses the account). Offers, the feed and
every peer carry only ``public_contact``: the masked name, e-mail and phone plus the account's opaque handle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from xporty.trader.v1 import offer_pb2
from xwl_runtime import pii
from xwl_runtime.fieldcrypt import Keyring

from .tables import trader_accounts

ACTIVE, ERASED = "ACTIVE", "ERASED"
PERSONAL_COLUMNS = ("display_name", "contact_name", "contact_email", "contact_phone")
"""The encrypted columns of ``trader_accounts`` (each sealed with ``trader_accounts.<column>`` as associated data)."""
ERASED_MARK = "[erased]"


def column_aad(column: str) -> str:
    return f"trader_accounts.{column}"


@dataclass(frozen=True)
class Contact:
    """A clear manager contact."""

    name: str
    email: str
    phone: str


@dataclass(frozen=True)
class Account:
    """A trader account with its contact decrypted."""

    account_id: str
    wl_id: str
    display_name: str
    contact: Contact
    handle: str
    status: str


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "*"


def public_contact(contact: Contact, handle: str) -> offer_pb2.TraderContact:
    """What peers and unprivileged callers see: the masked contact and the opaque handle to ask for it."""
    if contact.email == ERASED_MARK:
        return offer_pb2.TraderContact(name=ERASED_MARK, email=ERASED_MARK, phone=ERASED_MARK, handle=handle)
    return offer_pb2.TraderContact(name=_fit(pii.mask_name(contact.name), 200),
                                   email=_fit(pii.mask_email(contact.email), 254),
                                   phone=_fit(pii.mask_phone(contact.phone), 40), handle=handle)


def _account_id(email_index: str) -> str:
    return "ta_" + email_index[:32]


class TraderAccounts:
    """Reads and writes ``trader_accounts`` inside the caller's transaction."""

    def __init__(self, keyring: Keyring, wl_id: str) -> None:
        self.keyring = keyring
        self._wl = wl_id

    def account_id_for(self, email: str) -> str:
        return _account_id(self.keyring.blind_index(email))

    def _sealed(self, display_name: str, contact: Contact) -> dict[str, str]:
        seal = self.keyring.encrypt
        return {"display_name": seal(display_name, column_aad("display_name")),
                "contact_name": seal(contact.name, column_aad("contact_name")),
                "contact_email": seal(contact.email, column_aad("contact_email")),
                "contact_phone": seal(contact.phone, column_aad("contact_phone"))}

    async def upsert(self, conn: AsyncConnection, contact: Contact, now: dt.datetime) -> tuple[str, str]:
        """The (account id, handle) of the account of ``contact``'s manager, created or refreshed.

        An offer write names its manager every time, and the contact rarely changes: an account that already holds
        exactly this contact is read, not rewritten (a rewrite would seal four fields under fresh nonces and add a
        row version per offer update, for nothing)."""
        email_index = self.keyring.blind_index(contact.email)  # once: it names the account and indexes it
        account_id = _account_id(email_index)
        handle = self.keyring.handle(self._wl, account_id)
        row = (await conn.execute(sa.select(trader_accounts)
                                  .where(trader_accounts.c.account_id == account_id))).one_or_none()
        if row is not None:
            held = self.decode(row)
            if held.status == ACTIVE and held.display_name == contact.name and held.contact == contact:
                return account_id, handle
        values = {**self._sealed(contact.name, contact), "email_index": email_index,
                  "status": ACTIVE, "updated_at": now}
        if row is not None:
            await conn.execute(sa.update(trader_accounts)
                               .where(trader_accounts.c.account_id == account_id).values(values))
        else:
            await conn.execute(sa.insert(trader_accounts).values(
                account_id=account_id, wl_id=self._wl, handle=handle, created_at=now, **values))
        return account_id, handle

    def decode(self, row: Any) -> Account:
        """A ``trader_accounts`` row with its personal columns decrypted."""
        opened = {c: self.keyring.decrypt(getattr(row, c), column_aad(c)) for c in PERSONAL_COLUMNS}
        return Account(row.account_id, row.wl_id, opened["display_name"],
                       Contact(opened["contact_name"], opened["contact_email"], opened["contact_phone"]),
                       row.handle, row.status)

    async def get(self, conn: AsyncConnection, account_id: str) -> Account | None:
        row = (await conn.execute(sa.select(trader_accounts)
                                  .where(trader_accounts.c.account_id == account_id))).first()
        return None if row is None else self.decode(row)

    async def by_handle(self, conn: AsyncConnection, handle: str) -> Account | None:
        row = (await conn.execute(sa.select(trader_accounts).where(trader_accounts.c.handle == handle))).first()
        return None if row is None else self.decode(row)

    async def by_email(self, conn: AsyncConnection, email: str) -> Account | None:
        """The account whose manager e-mail is ``email`` (through the blind index, never a clear column)."""
        row = (await conn.execute(sa.select(trader_accounts).where(
            trader_accounts.c.email_index == self.keyring.blind_index(email)))).first()
        return None if row is None else self.decode(row)

    async def erase(self, conn: AsyncConnection, account_id: str, now: dt.datetime) -> None:
        """Replace the account's personal data by the erased mark; the account row (and its trade) stays."""
        erased = Contact(ERASED_MARK, ERASED_MARK, ERASED_MARK)
        await conn.execute(sa.update(trader_accounts).where(trader_accounts.c.account_id == account_id).values(
            **self._sealed(ERASED_MARK, erased), email_index="", status=ERASED, updated_at=now))
