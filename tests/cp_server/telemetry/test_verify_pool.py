"""Signature checks in worker processes give exactly the verdicts of the inline path (request order, reasons)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cp_server.risk import tables as t
from cp_server.settings.risk import RiskSettings
from cp_server.telemetry.verify_pool import SignatureVerifier, verify_chunk
from tests.cp_server.risk.harness import KIND, RiskCp, running_risk_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import telemetry_pb2


def _der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


async def test_pool_verdicts_equal_inline_verdicts() -> None:
    alg = ec.ECDSA(hashes.SHA256())
    k1, k2 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    checks = []
    for i in range(40):
        payload = f"event-{i}".encode()
        signature = k1.sign(payload, alg)
        if i % 7 == 3:
            payload += b"!"  # tampered after signing
        if i % 11 == 5:
            signature = k2.sign(payload, alg)  # another key
        if i % 13 == 9:
            signature = b"\x30\x00garbage"  # not even DER
        checks.append((_der(k1), payload, signature))
    inline = verify_chunk(checks)
    assert 0 < sum(inline) < len(checks)
    verifier = SignatureVerifier(workers=2, min_parallel=8)
    try:
        await verifier.start()
        assert verifier.parallel
        assert await verifier.verify(checks) == inline
    finally:
        await verifier.close()
    assert not verifier.parallel


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[RiskCp]:
    settings = RiskSettings(verify_workers=2, verify_parallel_min=8)
    async with running_risk_cp(pki, db_url, settings=settings) as cp:
        await cp.seed({"wl-a": ("XPY-A", "1"), "wl-b": ("XPY-B", "1")}, [("wl-a", "wl-b", "1000000")])
        yield cp


async def test_large_batch_through_workers_keeps_every_refusal(cp: RiskCp) -> None:
    a, b = cp.node("wl-a"), cp.node("wl-b")
    await b.publish()  # wl-b's certificate known to the CP: its signature verifies but does not name wl-a

    def export(n: int) -> telemetry_pb2.LedgerEvent:
        return a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id=f"o{n}", exporter="wl-a",
                       importer="wl-b", amount="1", currency="XPY-A")

    warm = [a.sign(export(n)) for n in range(8)]
    assert (await a.publish(*warm)).accepted == 8  # starts the workers (this batch is verified inline)
    assert cp.parts.verifier is not None
    for _ in range(200):
        if cp.parts.verifier.parallel:
            break
        await asyncio.sleep(0.05)
    assert cp.parts.verifier.parallel
    batch = [a.sign(export(n)) for n in range(100, 160)]
    expected: dict[int, str] = {}
    for i in range(0, 60, 6):
        forged = telemetry_pb2.LedgerEvent.FromString(batch[i].payload)
        forged.amount.amount = "999"
        batch[i].payload = forged.SerializeToString()
        expected[i] = "BAD_SIGNATURE"
    for i in range(2, 60, 10):
        batch[i] = b.sign(export(100 + i))
        expected[i] = "SIGNER_MISMATCH"
    batch[59].signature = b""
    expected[59] = "UNSIGNED"
    batch[58] = warm[0]
    resp = await a.publish(*batch)
    assert {r.index: r.reason for r in resp.rejected} == expected
    assert [r.index for r in resp.rejected] == sorted(expected)
    assert (resp.accepted, resp.duplicates) == (60 - len(expected) - 1, 1)
    async with cp.engine.connect() as conn:
        stored = (await conn.execute(sa.select(sa.func.count()).select_from(t.events))).scalar()
    assert stored == 8 + resp.accepted
