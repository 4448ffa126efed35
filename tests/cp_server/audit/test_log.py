"""The audit log: chain and signatures verify; edits, deletions, forged signatures and a cut tail are detected;
concurrent appenders never fork the chain."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.app import MIGRATIONS_DIR, VERSION_TABLE
from cp_server.audit.log import AuditLog
from cp_server.store.schema import audit_log
from tests.support.pki import PkiFixture
from xwl_runtime import correlation, db
from xwl_runtime.clock import SystemClock
from xwl_runtime.pki import new_private_key


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(db.upgrade, db_url, MIGRATIONS_DIR, version_table=VERSION_TABLE)
    eng = db.create_engine(db_url)
    yield eng
    await eng.dispose()


async def _append(engine: AsyncEngine, log: AuditLog, n: int) -> int:
    async with engine.begin() as conn:
        return await log.append(conn, actor="spiffe://xporty/ops/alice", action="test.change", subject=f"thing/{n}",
                                before={"n": n - 1}, after={"n": n, "note": "café"})


async def test_chain_verifies_and_carries_correlation_id(engine: AsyncEngine, pki: PkiFixture) -> None:
    log = AuditLog(pki.dir.load_ca().key, SystemClock())
    assert await log.verify(engine) == (True, 0, 0)
    correlation.current_correlation_id.set("cid-123")
    seqs = [await _append(engine, log, n) for n in range(1, 4)]
    assert seqs == [1, 2, 3]
    entries = await log.list(engine, after_seq=0, limit=10)
    assert [e.correlation_id for e in entries] == ["cid-123"] * 3
    assert entries[1].prev_hash == entries[0].hash
    assert await log.verify(engine) == (True, 3, 0)


async def test_concurrent_appenders_do_not_fork_the_chain(engine: AsyncEngine, pki: PkiFixture) -> None:
    key = pki.dir.load_ca().key
    replicas = [AuditLog(key, SystemClock()), AuditLog(key, SystemClock())]
    seqs = await asyncio.gather(*(_append(engine, replicas[n % 2], n) for n in range(1, 31)))
    assert sorted(seqs) == list(range(1, 31))
    assert await replicas[0].verify(engine) == (True, 30, 0)


async def test_rolled_back_append_leaves_no_gap(engine: AsyncEngine, pki: PkiFixture) -> None:
    log = AuditLog(pki.dir.load_ca().key, SystemClock())
    await _append(engine, log, 1)
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await log.append(conn, actor="a", action="b", subject="c", before=None, after=None)
            raise RuntimeError("caller fails after appending")
    assert await _append(engine, log, 2) == 2
    assert await log.verify(engine) == (True, 2, 0)


async def test_tampering_is_detected(engine: AsyncEngine, pki: PkiFixture) -> None:
    log = AuditLog(pki.dir.load_ca().key, SystemClock())
    for n in range(1, 5):
        await _append(engine, log, n)
    async with engine.connect() as conn:
        original = {r["seq"]: dict(r) for r in (await conn.execute(sa.select(audit_log))).mappings().all()}
    forged = base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()
    cases = [
        ("edit", sa.update(audit_log).where(audit_log.c.seq == 2).values(actor="spiffe://xporty/ops/eve"), 2),
        ("forged_signature", sa.update(audit_log).where(audit_log.c.seq == 3).values(signature=forged), 3),
        ("delete_middle", sa.delete(audit_log).where(audit_log.c.seq == 2), 2),
        ("delete_tail", sa.delete(audit_log).where(audit_log.c.seq == 4), 4),
    ]
    for name, statement, first_bad in cases:
        async with engine.begin() as conn:
            await conn.execute(statement)
        ok, count, bad = await log.verify(engine)
        assert (ok, bad, count) == (False, first_bad, first_bad - 1), name
        async with engine.begin() as conn:  # restore the untouched log for the next case
            await conn.execute(sa.delete(audit_log))
            await conn.execute(sa.insert(audit_log), list(original.values()))
        assert await log.verify(engine) == (True, 4, 0), name
    # A verifier holding another key refuses the very first record.
    assert await AuditLog(new_private_key(), SystemClock()).verify(engine) == (False, 0, 1)
