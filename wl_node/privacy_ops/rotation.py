"""Key rotation of a node's personal data while it serves: new active key, then re-encryption in batches.

``rotate`` (1) writes the key file with a fresh key made active (old keys kept), (2) waits until every process
sharing the file has noticed (``fieldcrypt.RELOAD_CHECK_S``), then (3) re-encrypts, table by table in primary-key
batches, every value still sealed with another key. Each row is updated only if it still holds the value read
(a concurrent write wins; the next pass sees it), and passes repeat until one finds nothing left, so a value a
serving process wrote with the old key just before it reloaded is caught too. Afterwards ``retire`` removes the old
key from the file, refusing while any stored value still needs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wl_node.checkout.tables import BUYER_REFERENCE_AAD, checkouts, import_ledger
from wl_node.privacy.accounts import PERSONAL_COLUMNS, column_aad
from wl_node.privacy.disclosure import PURPOSE_AAD
from wl_node.privacy.tables import contact_disclosures, trader_accounts
from xwl_runtime.fieldcrypt import PREFIX, RELOAD_CHECK_S, KeyMaterial, Keyring, write_key_file

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SealedColumn:
    """One encrypted column: its table, primary key, and the associated data its values are sealed with."""

    table: sa.Table
    key: str
    column: str
    aad: str


SEALED_COLUMNS = (
    *(SealedColumn(trader_accounts, "account_id", c, column_aad(c)) for c in PERSONAL_COLUMNS),
    SealedColumn(contact_disclosures, "id", "purpose", PURPOSE_AAD),
    SealedColumn(checkouts, "checkout_id", "buyer_reference", BUYER_REFERENCE_AAD),
    SealedColumn(import_ledger, "entry_id", "buyer_reference", BUYER_REFERENCE_AAD),
)
"""Every personal column a node encrypts (the data map of docs/privacy.md)."""


async def _pass(engine: AsyncEngine, keyring: Keyring, spec: SealedColumn, batch: int, progress: Progress) -> int:
    """Re-encrypt ``spec``'s values not sealed with the active key; the number of rows changed."""
    table, key, col = spec.table, spec.table.c[spec.key], spec.table.c[spec.column]
    active = f"{PREFIX}:{keyring.active}:"
    after: object = None
    changed = 0
    while True:
        query = sa.select(key, col).where(col != "", ~col.startswith(active, autoescape=True))
        if after is not None:
            query = query.where(key > after)
        async with engine.connect() as conn:
            rows = (await conn.execute(query.order_by(key).limit(batch))).all()
        if not rows:
            return changed
        async with engine.begin() as conn:
            for pk, value in rows:
                clear = keyring.decrypt(value, spec.aad) if value.startswith(PREFIX + ":") else value
                result = await conn.execute(sa.update(table).where(key == pk, col == value)
                                            .values({spec.column: keyring.encrypt(clear, spec.aad)}))
                changed += result.rowcount
        after = rows[-1][0]
        progress(f"{table.name}.{spec.column}: {changed} re-encrypted under {keyring.active}")
        await asyncio.sleep(0)  # let the serving process (when in-process) breathe between batches


async def reencrypt(engine: AsyncEngine, keyring: Keyring, *, batch: int = 500,
                    progress: Progress = lambda _line: None) -> int:
    """Passes over every sealed column until one changes nothing; the total number of values re-encrypted."""
    total = 0
    while True:
        changed = 0
        for spec in SEALED_COLUMNS:
            changed += await _pass(engine, keyring, spec, batch, progress)
        total += changed
        if not changed:
            return total


async def rotate(engine: AsyncEngine, key_file: Path, new_key_id: str, *, batch: int = 500,
                 progress: Progress = lambda _line: None, settle_s: float = 2 * RELOAD_CHECK_S) -> int:
    """Make a new key active in ``key_file`` and re-encrypt every stored value under it (see the module)."""
    material = (await asyncio.to_thread(_read, key_file)).with_new_active(new_key_id)
    await asyncio.to_thread(write_key_file, key_file, material)
    progress(f"key {new_key_id} is active in {key_file}; waiting {settle_s:.1f} s for serving processes")
    await asyncio.sleep(settle_s)
    total = await reencrypt(engine, Keyring(material), batch=batch, progress=progress)
    progress(f"done: {total} values re-encrypted under {new_key_id}")
    return total


async def still_using(engine: AsyncEngine, key_id: str) -> int:
    """How many stored values are sealed with ``key_id``."""
    count = 0
    async with engine.connect() as conn:
        for spec in SEALED_COLUMNS:
            col = spec.table.c[spec.column]
            count += int(await conn.scalar(sa.select(sa.func.count()).select_from(spec.table)
                                           .where(col.startswith(f"{PREFIX}:{key_id}:", autoescape=True))) or 0)
    return count


async def retire(engine: AsyncEngine, key_file: Path, key_id: str) -> None:
    """Remove ``key_id`` from the key file; ValueError while a stored value still needs it (or it is active)."""
    material = await asyncio.to_thread(_read, key_file)
    if key_id == material.active or key_id not in material.keys:
        raise ValueError(f"{key_id!r} is the active key, or not in the key file: only an old key can be retired")
    left = await still_using(engine, key_id)
    if left:
        raise ValueError(f"{left} stored values are still sealed with {key_id!r}: run 'xcwl keys rotate' first")
    await asyncio.to_thread(write_key_file, key_file, material.without(key_id))


def _read(key_file: Path) -> KeyMaterial:
    return KeyMaterial.from_json(key_file.read_text())
