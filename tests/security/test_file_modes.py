"""Secrets and stores on disk are owner-only from their first byte.

The attack: another local user (or a backup job running as one) reads a key that was written through a reused
temporary file. Before, ``write_private`` opened a fixed ``<name>.tmp`` with ``O_TRUNC``: a stale ``.tmp`` left
0644 kept its mode, so the key was world-readable until (and after) the rename. SQLite created its database, WAL
and shared-memory files with the umask's 0644.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cp_server.identity.signing import SIGNING_KEY_FILE, load_or_create_signing_key
from tests.cp_server.core_harness import running_cp
from tests.support.databases import sqlite_url
from tests.support.pki import PkiFixture
from tests.wl_node.fake_cp import make_view
from wl_node.identity.files import write_pair
from wl_node.policy.checkpoint import CheckpointKeeper, Offer
from wl_node.policy.lkg import LastKnownGoodStore
from wl_node.store import open_store
from xwl_runtime.audit_checkpoint import ca_public_key, sign_checkpoint
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir, key_to_pem, new_private_key, write_private, write_public
from xwl_runtime.tls import KeyPair

SECRET = key_to_pem(new_private_key())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The most permissive umask: modes must come from the code, not from the environment."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def stale(path: Path, data: bytes = b"stale") -> Path:
    path.write_bytes(data)
    path.chmod(0o644)
    return path


@pytest.mark.usefixtures("permissive_umask")
def test_a_key_written_next_to_a_stale_world_readable_tmp_ends_0600_and_the_tmp_is_not_reused(tmp_path: Path) -> None:
    key = tmp_path / "wl-a.key"
    old_tmp = stale(tmp_path / "wl-a.key.tmp")  # the name the old writer reused
    write_private(key, SECRET)
    assert (key.read_bytes(), mode(key)) == (SECRET, 0o600)
    assert (old_tmp.read_bytes(), mode(old_tmp)) == (b"stale", 0o644)  # never opened, never filled with the key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wl-a.key", "wl-a.key.tmp"]  # no temporary left behind


@pytest.mark.usefixtures("permissive_umask")
def test_replacing_a_world_readable_key_makes_it_0600_and_certificates_stay_readable(tmp_path: Path) -> None:
    key = stale(tmp_path / "ops-alice.key")
    write_private(key, SECRET)
    assert (key.read_bytes(), mode(key)) == (SECRET, 0o600)
    cert = tmp_path / "ops-alice.crt"
    write_public(cert, b"certificate")
    assert mode(cert) == 0o644


def test_a_symlink_planted_at_a_temporary_name_is_never_followed(tmp_path: Path) -> None:
    key = tmp_path / "cp.key"
    target = stale(tmp_path / "elsewhere")
    (tmp_path / "cp.key.tmp").symlink_to(target)
    write_private(key, SECRET)
    assert (key.read_bytes(), mode(key)) == (SECRET, 0o600)
    assert target.read_bytes() == b"stale"


@pytest.mark.usefixtures("permissive_umask")
def test_ca_cp_jwt_and_node_keys_are_0600(tmp_path: Path) -> None:
    pki = PkiDir(tmp_path / "pki")
    ca = pki.init_ca()
    assert mode(pki.ca_key) == 0o600 and mode(pki.key(Identity.cp())) == 0o600
    assert mode(pki.ca_cert) == 0o644
    load_or_create_signing_key(pki.root)
    assert mode(pki.root / SIGNING_KEY_FILE) == 0o600
    # A node's renewal stages the pair as .next files: a stale world-readable one must not leak its mode.
    wl = Identity.wl("wl-a")
    staged = stale(pki.root / f"{pki.key(wl).name}.next")
    issued = ca.issue(wl)
    write_pair(pki, wl, KeyPair(issued.cert_pem, issued.key_pem))
    assert (pki.key(wl).read_bytes(), mode(pki.key(wl))) == (issued.key_pem, 0o600)
    assert not staged.exists()


@pytest.mark.usefixtures("permissive_umask")
async def test_node_state_files_are_0600(tmp_path: Path, pki: PkiFixture) -> None:
    state_dir = tmp_path / "state"
    lkg = LastKnownGoodStore(state_dir, "wl-a")
    state_dir.mkdir()
    old_tmp = stale(state_dir / f".{lkg.path.name}.{os.getpid()}.tmp")  # the name the old writer reused
    now = dt.datetime.now(dt.UTC)
    await lkg.save(make_view("wl-a", 1), now, now)
    lkg.close()
    assert mode(lkg.path) == 0o600
    assert (old_tmp.read_bytes(), mode(old_tmp)) == (b"stale", 0o644)
    old_tmp.unlink()
    keeper = CheckpointKeeper(state_dir, "wl-a", ca_public_key(pki.dir.ca_cert.read_bytes()))
    checkpoint = sign_checkpoint(pki.dir.load_ca().key, 1, "a" * 64, now)
    assert await keeper.offer(checkpoint) is Offer.ADOPTED
    assert mode(keeper.path) == 0o600
    assert sorted(p.name for p in state_dir.iterdir()) == [keeper.path.name, lkg.path.name]


def sqlite_files(url: str) -> list[Path]:
    db_file = Path(sa.engine.make_url(url).database or "")
    return [p for p in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")) if p.exists()]


@pytest.mark.usefixtures("permissive_umask")
async def test_node_store_files_are_0600_and_an_existing_world_readable_store_is_tightened(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, "node")
    engine = await open_store(url, "wl-a")
    try:
        files = sqlite_files(url)
        assert len(files) == 3  # database, WAL and shared memory while the store is open
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        await engine.dispose()
    for path in sqlite_files(url):
        path.chmod(0o644)
    engine = await open_store(url, "wl-a")
    try:
        assert {p.name: mode(p) for p in sqlite_files(url)} == {p.name: 0o600 for p in sqlite_files(url)}
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("permissive_umask")
async def test_cp_store_files_are_0600(pki: PkiFixture, sqlite_db_url: str) -> None:
    async with running_cp(pki, sqlite_db_url) as cp:
        await cp.register("wl-a")
        await asyncio.sleep(0)
        files = sqlite_files(sqlite_db_url)
        assert len(files) == 3
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
