"""``xcwl keys rotate|retire`` and ``xcwl privacy access-log|export|erase`` as an operator runs them on a node's
host: against the node's SQLite store and key file, in child processes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import sqlalchemy as sa

from tests.wl_node.catalog.helpers import EMAIL, NAME, offer
from tests.xcwl.runner import xcwl
from wl_node.catalog.feed import FeedNotifier
from wl_node.catalog.offers import OfferBook
from wl_node.catalog.validation import validate_offer
from wl_node.privacy.accounts import TraderAccounts
from wl_node.privacy.disclosure import ContactDisclosure
from wl_node.store import open_store
from xwl_runtime.clock import SystemClock
from xwl_runtime.errors import PermissionDenied
from xwl_runtime.fieldcrypt import KeyMaterial, Keyring


async def _node_store(tmp_path: Path) -> tuple[str, Path]:
    """A wl-a store with two offers of one manager and two disclosure requests (one granted, one refused)."""
    url, key_file = f"sqlite:///{tmp_path / 'node.db'}", tmp_path / "state" / "data-keys.json"
    engine = await open_store(url, "wl-a")
    try:
        accounts = TraderAccounts(Keyring.from_file(key_file), "wl-a")
        book = OfferBook(engine, SystemClock(), FeedNotifier(), "wl-a", accounts)
        for offer_id in ("o-1", "o-2"):
            await book.publish(validate_offer(offer(offer_id), currency="XPY-A", decimals=2))
        async with engine.connect() as conn:
            handle = (await conn.execute(sa.text("SELECT handle FROM trader_accounts"))).scalar_one()
        disclosure = ContactDisclosure(engine, accounts, SystemClock(), grants=frozenset({"wl-b"}))
        await disclosure.disclose("wl-b", handle, "delivery for order 12345")
        try:
            await disclosure.disclose("wl-c", handle, "marketing")
        except PermissionDenied:
            pass
    finally:
        await engine.dispose()
    return url, key_file


async def test_rotate_access_log_erase_and_retire(tmp_path: Path) -> None:
    url, key_file = await _node_store(tmp_path)
    store = ["--db", url, "--wl-id", "wl-a", "--key-file", str(key_file)]

    rotated = await xcwl("keys", "rotate", *store, "--new-key-id", "k2", "--batch", "1")
    assert rotated.returncode == 0, rotated.stderr
    lines = rotated.stdout.splitlines()
    assert lines[0].startswith("key k2 is active") and lines[-1] == "done: 6 values re-encrypted under k2"
    assert any(line.startswith("trader_accounts.contact_email: 1 re-encrypted") for line in lines)
    assert set(KeyMaterial.from_json(key_file.read_text()).keys) == {"k1", "k2"}
    retired = await xcwl("keys", "retire", *store, "--key-id", "k1")
    assert retired.returncode == 0, retired.stderr
    assert set(KeyMaterial.from_json(key_file.read_text()).keys) == {"k2"}
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    refused = await xcwl("keys", "retire", *store, "--key-id", "k2")
    assert refused.returncode != 0 and "active key" in refused.stderr

    log = await xcwl("privacy", "access-log", *store, "--json")
    assert log.returncode == 0, log.stderr
    entries = json.loads(log.stdout)["disclosures"]
    assert [(e["caller"], e["granted"], e["purpose"]) for e in entries] == [
        ("wl-c", False, "marketing"), ("wl-b", True, "delivery for order 12345")]

    erased = await xcwl("privacy", "erase", *store, "--subject", EMAIL, "--operator", "alice", "--json")
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["offers_republished"] == 2
    exported = await xcwl("privacy", "export", *store, "--subject", EMAIL)
    assert exported.returncode == 0 and json.loads(exported.stdout)["trader_accounts"] == []
    again = await xcwl("privacy", "erase", *store, "--subject", EMAIL)
    assert again.returncode != 0 and EMAIL not in again.stderr
    raw = _store_bytes(tmp_path)
    assert EMAIL.encode() not in raw and NAME.encode() not in raw


def _store_bytes(root: Path) -> bytes:
    """The SQLite store's files as a backup would copy them (WAL included)."""
    return b"".join(p.read_bytes() for p in root.glob("node.db*"))


async def test_a_missing_key_file_is_refused_not_created(tmp_path: Path) -> None:
    result = await xcwl("privacy", "access-log", "--db", f"sqlite:///{tmp_path / 'n.db'}", "--wl-id", "wl-a",
                        "--key-file", str(tmp_path / "nope.json"))
    assert result.returncode != 0 and "does not exist" in result.stderr
    assert not (tmp_path / "nope.json").exists()
