"""Trader accounts: an offer write that names the manager the account already holds reads the account and writes
nothing (no fresh ciphertexts, no new row version); a changed contact, or an erased account named again, is sealed
anew. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from wl_node.privacy.accounts import ACTIVE, ERASED, Contact, TraderAccounts
from wl_node.privacy.tables import trader_accounts
from wl_node.store import migrate
from xwl_runtime import db
from xwl_runtime.fieldcrypt import Keyring

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
JOANA = Contact("Joana Silva", "joana.silva@example.com", "+55 11 91234-4321")


async def test_an_unchanged_contact_is_not_rewritten_and_a_changed_one_is(db_url: str, tmp_path: Path) -> None:
    await asyncio.to_thread(migrate, db_url)
    engine = db.create_engine(db_url)
    accounts = TraderAccounts(Keyring.from_file(tmp_path / "keys.json"), "wl-a")

    async def upsert(contact: Contact, at: dt.datetime) -> tuple[str, str]:
        async with engine.begin() as conn:
            return await accounts.upsert(conn, contact, at)

    async def stored() -> sa.Row:
        async with engine.connect() as conn:
            return (await conn.execute(sa.select(trader_accounts))).one()

    try:
        first = await upsert(JOANA, T0)
        created = await stored()
        assert await upsert(JOANA, T0 + dt.timedelta(hours=1)) == first
        assert await stored() == created  # same ciphertexts, same updated_at: nothing was written

        moved = Contact(JOANA.name, JOANA.email, "+55 21 99876-5432")
        assert await upsert(moved, T0 + dt.timedelta(hours=2)) == first  # the e-mail names the account
        changed = await stored()
        assert changed.contact_phone != created.contact_phone and changed.contact_email != created.contact_email
        assert changed.updated_at == T0 + dt.timedelta(hours=2)
        async with engine.connect() as conn:
            held = await accounts.get(conn, first[0])
        assert held is not None and (held.contact, held.status) == (moved, ACTIVE)

        async with engine.begin() as conn:
            await accounts.erase(conn, first[0], T0 + dt.timedelta(hours=3))
        assert (await stored()).status == ERASED
        await upsert(moved, T0 + dt.timedelta(hours=4))  # named again by a new offer: active again
        async with engine.connect() as conn:
            again = await accounts.get(conn, first[0])
        assert again is not None and (again.contact, again.status) == (moved, ACTIVE)
    finally:
        await engine.dispose()
