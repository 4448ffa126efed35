"""Bounded identity: renewals never outlive the maximum identity age, and a renewed certificate never renews again.

The attacker holds a WL node's key (stolen, or its own) and wants it to live forever: renew, renew again, keep an
old copy of the key and renew from it too. The CP counts every certificate's age from the enrollment that started
its chain, caps each renewal at ``origin + max_identity_age``, refuses once nothing useful is left
(FAILED_PRECONDITION ``IDENTITY_MAX_AGE``), and marks the presented certificate superseded in the renewal's
transaction (PERMISSION_DENIED ``CERTIFICATE_SUPERSEDED`` for any later renewal from it, also under a race).

TLS handshakes use the real clock, the CP the injected one: the clock is kept at or before real time so that every
presented certificate is valid for the handshake while the CP sees the chain as old.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from cryptography import x509

from cp_server.identity.certificates import certificates_of
from cp_server.identity.tables import issued_certificates
from tests.cp_server.identity.harness import IdentityCp, running_identity_cp
from tests.cp_server.identity.rpc import mtls_stub, refused
from tests.support.pki import PkiFixture
from wl_node.identity import CertificateRenewer, enroll
from xcwl.errors import CliError
from xcwl.serve import max_identity_age
from xporty.cp.v1 import identity_service_pb2 as pb
from xwl_runtime.clock import ManualClock
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir, key_to_pem, make_csr, new_private_key
from xwl_runtime.tls import KeyPair, TlsMaterial

WL_A = Identity.wl("wl-a")
MAX_AGE = dt.timedelta(hours=48)
LIFETIME = dt.timedelta(days=30)  # longer than the max age: the cap, not the lifetime, ends every certificate


@pytest.fixture
def clock() -> ManualClock:
    # Whole seconds: certificates carry no fractions, so "not_after == origin + max age" compares exactly.
    return ManualClock((dt.datetime.now(dt.UTC) - dt.timedelta(hours=47)).replace(microsecond=0))


@pytest.fixture
async def aged_cp(pki: PkiFixture, db_url: str, clock: ManualClock) -> AsyncIterator[IdentityCp]:
    async with running_identity_cp(pki, db_url, clock=clock, cert_lifetime=LIFETIME,
                                   max_identity_age=MAX_AGE) as cp:
        yield cp


async def _enroll(cp: IdentityCp, root: Path) -> TlsMaterial:
    await asyncio.to_thread(root.mkdir, parents=True)
    await asyncio.to_thread(shutil.copy, cp.pki.dir.ca_cert, root / "ca.crt")
    return await enroll(PkiDir(root), "wl-a", cp.enroll_target, await cp.token_for("wl-a"))


async def _renew(cp: IdentityCp, material: TlsMaterial) -> TlsMaterial:
    key = new_private_key()
    async with mtls_stub(cp.mtls_target, material) as stub:
        resp = await stub.RenewCertificate(pb.RenewCertificateRequest(csr_pem=make_csr(key).decode()), timeout=10)
    return TlsMaterial(material.ca_pem, KeyPair(resp.certificate_pem.encode(), key_to_pem(key)))


def _not_after(material: TlsMaterial) -> dt.datetime:
    return x509.load_pem_x509_certificate(material.pair.cert_pem).not_valid_after_utc


async def _state(cp: IdentityCp) -> tuple[int, int, list[tuple[str, str | None]]]:
    """(certificates recorded, audit rows, (serial, superseded_by) per certificate): what a refusal must not change."""
    async with cp.engine.connect() as conn:
        count = int(await conn.scalar(sa.select(sa.func.count()).select_from(issued_certificates)) or 0)
    records = await certificates_of(cp.engine, "wl-a")
    return count, len(await cp.audit_entries()), [(r.serial, r.superseded_by) for r in records]


async def test_a_renewal_chain_stops_at_the_maximum_identity_age(
    aged_cp: IdentityCp, clock: ManualClock, tmp_path: Path
) -> None:
    origin = clock.now()
    first = await _enroll(aged_cp, tmp_path / "node")
    assert _not_after(first) == origin + MAX_AGE  # capped from the start, not 30 days

    clock.advance(dt.timedelta(hours=46).total_seconds())  # 1 h before real time; 2 h of age left
    second = await _renew(aged_cp, first)
    assert _not_after(second) == origin + MAX_AGE  # a renewal inherits the origin: no extension
    records = await certificates_of(aged_cp.engine, "wl-a")
    assert [(r.reason, r.origin_at) for r in records] == [("enroll", origin), ("renew", origin)]

    clock.advance(dt.timedelta(hours=1, minutes=56).total_seconds())  # 4 minutes of age left: nothing useful
    before = await _state(aged_cp)
    err = await refused(_renew(aged_cp, second))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "IDENTITY_MAX_AGE")
    assert err.metadata is not None and err.metadata["max_age_seconds"] == str(int(MAX_AGE.total_seconds()))
    assert await _state(aged_cp) == before  # nothing issued, recorded, superseded or audited


async def test_a_superseded_certificate_cannot_renew(aged_cp: IdentityCp, clock: ManualClock, tmp_path: Path) -> None:
    first = await _enroll(aged_cp, tmp_path / "node")
    clock.advance(60)
    second = await _renew(aged_cp, first)
    before = await _state(aged_cp)
    # The thief kept a copy of the first key and certificate: renewing from it would fork the chain.
    err = await refused(_renew(aged_cp, first))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CERTIFICATE_SUPERSEDED")
    assert await _state(aged_cp) == before
    serials = [s for s, _ in before[2]]
    assert before[2] == [(serials[0], serials[1]), (serials[1], None)]
    # The legitimate holder of the successor still renews.
    third = await _renew(aged_cp, second)
    assert _not_after(third) == _not_after(first)


@pytest.mark.parametrize("origin", ["enrolled", "offline"])
async def test_concurrent_renewals_from_one_certificate_yield_one_successor(
    aged_cp: IdentityCp, pki: PkiFixture, tmp_path: Path, origin: str
) -> None:
    # An enrolled certificate is recorded already; an offline one (xcwl pki issue) is recorded by its first renewal.
    first = await _enroll(aged_cp, tmp_path / "node") if origin == "enrolled" else pki.material(WL_A)
    results = await asyncio.gather(*(_renew(aged_cp, first) for _ in range(6)), return_exceptions=True)
    won = [r for r in results if isinstance(r, TlsMaterial)]
    lost = [r for r in results if not isinstance(r, TlsMaterial)]
    assert len(won) == 1, results
    for failure in lost:
        assert isinstance(failure, grpc.aio.AioRpcError), failure
        assert failure.code() is grpc.StatusCode.PERMISSION_DENIED
    count, audits, _ = await _state(aged_cp)
    assert (count, audits) == (2, 2 if origin == "enrolled" else 1)  # the first certificate and one renewal
    first_reason = "enroll" if origin == "enrolled" else "offline"
    records = {r.reason: r for r in await certificates_of(aged_cp.engine, "wl-a")}
    winner = format(x509.load_pem_x509_certificate(won[0].pair.cert_pem).serial_number, "x")
    assert (records[first_reason].superseded_by, records["renew"].serial, records["renew"].superseded_by) == (
        winner, winner, None)


async def test_node_renewal_loop_stops_on_max_age_and_keeps_serving_its_certificate(
    aged_cp: IdentityCp, clock: ManualClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    material = await _enroll(aged_cp, tmp_path / "node")
    node_pki = PkiDir(tmp_path / "node")
    files = (node_pki.cert(WL_A).read_bytes(), node_pki.key(WL_A).read_bytes())
    clock.advance(dt.timedelta(hours=47, minutes=58).total_seconds())  # the CP: 2 minutes of age left
    node_clock = ManualClock(clock.now())  # the node: its certificate is due (past half its life)
    renewer = CertificateRenewer(pki=node_pki, wl_id="wl-a", cp_target=aged_cp.mtls_target, material=material,
                                 clock=node_clock, poll_interval=0.02)
    stop = asyncio.Event()
    loop = asyncio.create_task(renewer.run(stop))
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not renewer.final_refusal:
            assert asyncio.get_running_loop().time() < deadline, "no final refusal logged"
            await asyncio.sleep(0.02)
        assert "IDENTITY_MAX_AGE" in renewer.final_refusal
        assert renewer.due == _not_after(material)  # next look only at expiry: no hammering of the CP
        assert renewer.material == material and renewer.renewals == 0
        assert (node_pki.cert(WL_A).read_bytes(), node_pki.key(WL_A).read_bytes()) == files
        assert any("bootstrap token" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
        await asyncio.sleep(0.1)
        count, audits, _ = await _state(aged_cp)
        assert (count, audits) == (1, 1)  # one refused attempt, not a retry storm
    finally:
        stop.set()
        await loop


@pytest.mark.parametrize("value", ["5", "-1", "nan", "1e12", "ten"])
def test_max_identity_age_flag_is_validated_at_the_edge(value: str) -> None:
    with pytest.raises(CliError, match="--max-identity-age"):
        max_identity_age(value)


def test_max_identity_age_flag_default_is_30_days() -> None:
    assert max_identity_age(None) == dt.timedelta(days=30)
    assert max_identity_age("3600") == dt.timedelta(hours=1)
