"""Revocation and offline certificates, as an attacker holding a WL node's key (or a certificate minted offline
with the CA key) would try them: against the real CP (``build_cp``) and a real node (``build_node``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from cryptography import x509

from cp_server.identity.certificates import certificates_of
from cp_server.identity.tables import issued_certificates
from cp_server.store.trust_tables import revoked_certificates
from tests.cp_server.core_harness import OPS, RPC_TIMEOUT, Cp, rpc_error, running_cp, utc
from tests.cp_server.identity.harness import running_identity_cp
from tests.cp_server.identity.rpc import mtls_stub, refused
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory, db_factory
from tests.wl_node.conftest import eventually
from tests.wl_node.risk.harness import world
from xporty.cp.v1 import admin_service_pb2 as pb
from xporty.cp.v1 import identity_service_pb2 as ids
from xporty.cp.v1 import policy_service_pb2 as ps
from xporty.cp.v1 import policy_service_pb2_grpc
from xporty.trader.v1 import trader_service_pb2 as tr
from xporty.trader.v1 import trader_service_pb2_grpc as tr_grpc
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.pki import make_csr, new_private_key
from xwl_runtime.tls import secure_channel

WL_A = Identity.wl("wl-a")
WL_B = Identity.wl("wl-b")


def serial_of(pem: bytes) -> str:
    return format(x509.load_pem_x509_certificate(pem).serial_number, "x")


async def _revoke(cp: Cp, **fields: str) -> pb.RevokeCertificateResponse:
    admin = await cp.admin()
    resp: pb.RevokeCertificateResponse = await admin.RevokeCertificate(
        pb.RevokeCertificateRequest(**fields), timeout=RPC_TIMEOUT)
    return resp


async def test_a_revoked_node_is_refused_by_the_cp_at_once_on_unary_calls_and_its_open_stream(
    pki: PkiFixture, db_url: str
) -> None:
    async with running_cp(pki, db_url) as cp:
        await cp.register("wl-a", "wl-b")
        node = await cp.policy(WL_A)
        stream = node.WatchPolicies(ps.WatchPoliciesRequest())
        first = await stream.read()
        assert first.snapshot.wl_id == "wl-a" and not first.snapshot.revoked_certificates

        serial = serial_of(pki.material(WL_A).pair.cert_pem)
        done = await _revoke(cp, serial=serial, reason="key stolen")
        assert [r.serial for r in done.revoked] == [serial] and done.version > first.snapshot.version

        # The open stream ends with the refusal instead of delivering anything more.
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while True:
                await asyncio.wait_for(stream.read(), timeout=RPC_TIMEOUT)
        assert ended.value.code() is grpc.StatusCode.UNAUTHENTICATED
        before = await cp.state()
        code, reason, _ = await rpc_error(node.GetPolicies(ps.GetPoliciesRequest(), timeout=RPC_TIMEOUT))
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "CERTIFICATE_REVOKED")
        code, reason, _ = await rpc_error(node.ReportPolicyStatus(
            ps.ReportPolicyStatusRequest(applied_version=done.version), timeout=RPC_TIMEOUT))
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "CERTIFICATE_REVOKED")
        assert await cp.state() == before  # nothing recorded for the refused calls

        # Every WL's view carries the revocation; another node is unaffected.
        other = await (await cp.policy(WL_B)).GetPolicies(ps.GetPoliciesRequest(), timeout=RPC_TIMEOUT)
        assert [(r.serial, r.wl_id, r.reason) for r in other.view.revoked_certificates] == [
            (serial, "wl-a", "key stolen")]
        listed = await (await cp.admin()).ListRevokedCertificates(pb.ListRevokedCertificatesRequest(),
                                                                  timeout=RPC_TIMEOUT)
        assert [r.serial for r in listed.revoked] == [serial]


async def test_revoking_again_or_an_unknown_serial_changes_nothing(pki: PkiFixture, db_url: str) -> None:
    async with running_cp(pki, db_url) as cp:
        await cp.register("wl-a")
        await cp.channel(WL_A)  # records (imports) wl-a's certificate
        await _revoke(cp, wl_id="wl-a", reason="decommissioned")
        before = await cp.state()
        again = await _revoke(cp, wl_id="wl-a")
        assert (list(again.revoked), again.version) == ([], 0)
        admin = await cp.admin()
        code, reason, _ = await rpc_error(admin.RevokeCertificate(pb.RevokeCertificateRequest(serial="abc123"),
                                                                  timeout=RPC_TIMEOUT))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "CERTIFICATE_NOT_FOUND")
        code, _, meta = await rpc_error(admin.RevokeCertificate(
            pb.RevokeCertificateRequest(serial="ab", wl_id="wl-a"), timeout=RPC_TIMEOUT))
        assert (code, meta.get("field")) == (grpc.StatusCode.INVALID_ARGUMENT, "serial")
        code, _, meta = await rpc_error(admin.RevokeCertificate(
            pb.RevokeCertificateRequest(wl_id="wl-a", reason="bad\x1b[2Jreason"), timeout=RPC_TIMEOUT))
        assert (code, meta.get("field")) == (grpc.StatusCode.INVALID_ARGUMENT, "reason")
        # A node may not revoke anything, not even another node's certificate.
        code, reason, _ = await rpc_error((await cp.admin(WL_A)).RevokeCertificate(
            pb.RevokeCertificateRequest(wl_id="wl-b"), timeout=RPC_TIMEOUT))
        assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
        assert await cp.state() == before


async def _recorded(cp: Cp, serial: str) -> bool:
    async with cp.app.ctx.engine.connect() as conn:
        row = (await conn.execute(sa.select(issued_certificates.c.reason)
                                  .where(issued_certificates.c.serial == serial))).first()
    return row is not None and row.reason == "import"


async def test_an_offline_certificate_is_refused_until_imported(pki: PkiFixture, db_url: str) -> None:
    async with running_cp(pki, db_url) as cp:
        await cp.register("wl-b")
        material = pki.material(WL_B)  # issued offline with the CA key: the CP never saw it
        serial = serial_of(material.pair.cert_pem)
        before = await cp.state()
        async with secure_channel(cp.target, material, expected=Identity.cp()) as channel:
            stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
            code, reason, _ = await rpc_error(stub.GetPolicies(ps.GetPoliciesRequest(), timeout=RPC_TIMEOUT))
            assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "CERTIFICATE_UNKNOWN")
            code, reason, _ = await rpc_error(stub.ReportPolicyStatus(
                ps.ReportPolicyStatusRequest(applied_version=1), timeout=RPC_TIMEOUT))
            assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "CERTIFICATE_UNKNOWN")
            assert await cp.state() == before and not await _recorded(cp, serial)

            # A certificate of another CA, or not a WL node's, cannot be imported.
            admin = await cp.admin()
            for pem in (pki.foreign_material(WL_B).pair.cert_pem, pki.material(OPS).pair.cert_pem, b"junk"):
                code, _, meta = await rpc_error(admin.ImportCertificate(
                    pb.ImportCertificateRequest(certificate_pem=pem.decode()), timeout=RPC_TIMEOUT))
                assert (code, meta.get("field")) == (grpc.StatusCode.INVALID_ARGUMENT, "certificate_pem")
            assert await cp.state() == before

            imported = await admin.ImportCertificate(
                pb.ImportCertificateRequest(certificate_pem=material.pair.cert_pem.decode()), timeout=RPC_TIMEOUT)
            assert (imported.serial, imported.wl_id, imported.imported) == (serial, "wl-b", True)
            version, audits = await cp.state()
            assert (version, audits) == (before[0], before[1] + 1) and await _recorded(cp, serial)
            again = await admin.ImportCertificate(
                pb.ImportCertificateRequest(certificate_pem=material.pair.cert_pem.decode()), timeout=RPC_TIMEOUT)
            assert again.imported is False and await cp.state() == (version, audits)

            view = await stub.GetPolicies(ps.GetPoliciesRequest(), timeout=RPC_TIMEOUT)
            assert view.view.wl_id == "wl-b"


# --- a peer node refuses a revoked caller once its view carries the revocation ------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbFactory]:
    with db_factory(request.param, tmp_path) as make:
        yield make


async def _watch_until_refused(stream: grpc.aio.UnaryStreamCall[tr.WatchOffersRequest, tr.WatchOffersResponse]
                               ) -> grpc.aio.AioRpcError:
    try:
        async for _ in stream:
            pass
    except grpc.aio.AioRpcError as err:
        return err
    raise AssertionError("the stream ended without an error")


async def test_a_peer_node_refuses_a_revoked_caller_and_closes_its_watch(
    tmp_path: Path, pki: PkiFixture, dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, dbs, ["wl-a", "wl-b"]) as w:
        exporter = await w.start_node("wl-a")
        await eventually(lambda: exporter.state.current() is not None, timeout=20)
        async with secure_channel(f"127.0.0.1:{exporter.port}", pki.material(WL_B),
                                  expected=Identity.wl("wl-a")) as channel:
            peer = tr_grpc.TraderServiceStub(channel)
            await peer.ListOffers(tr.ListOffersRequest(), timeout=RPC_TIMEOUT)  # allowed before
            watch = peer.WatchOffers(tr.WatchOffersRequest())
            await asyncio.sleep(0.2)

            resp = await w.admin("RevokeCertificate", pb.RevokeCertificateRequest(wl_id="wl-b", reason="test"))
            assert resp.revoked
            await eventually(_applied(exporter, resp.version), timeout=10)
            ended = await asyncio.wait_for(_watch_until_refused(watch), timeout=RPC_TIMEOUT)
            assert ended.code() is grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await peer.ListOffers(tr.ListOffersRequest(), timeout=RPC_TIMEOUT)
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert _reason(refused.value) == "CERTIFICATE_REVOKED"
            code_reason = await _place_order_refusal(peer)
            assert code_reason == (grpc.StatusCode.UNAUTHENTICATED, "CERTIFICATE_REVOKED")


def _applied(node: object, version: int) -> Callable[[], bool]:
    def check() -> bool:
        return node.state.version >= version  # type: ignore[attr-defined, no-any-return]
    return check


def _reason(err: grpc.aio.AioRpcError) -> str:
    return decode_rpc_error(err).reason


async def _place_order_refusal(peer: tr_grpc.TraderServiceStub) -> tuple[grpc.StatusCode, str]:
    """PlaceOrder is refused before the order desk sees it (no token even needed to prove it)."""
    try:
        await peer.PlaceOrder(tr.PlaceOrderRequest(), timeout=RPC_TIMEOUT)
    except grpc.aio.AioRpcError as err:
        return err.code(), _reason(err)
    raise AssertionError("PlaceOrder succeeded")



async def test_a_renewal_cannot_outrun_a_revocation_committed_while_it_was_in_flight(
    pki: PkiFixture, db_url: str
) -> None:
    """The pipeline's check ran before the revocation committed; the renewal's own transaction still refuses."""
    async with running_identity_cp(pki, db_url) as cp:  # IdentityService alone: no peer guard in front
        material = pki.material(WL_A)
        serial = serial_of(material.pair.cert_pem)
        async with cp.engine.begin() as conn:  # the revocation row, as RevokeCertificate commits it
            await conn.execute(revoked_certificates.insert().values(
                serial=serial, wl_id="wl-a", not_after=x509.load_pem_x509_certificate(
                    material.pair.cert_pem).not_valid_after_utc, revoke_time=utc(), reason="raced",
                actor=OPS.spiffe_id, changed_version=1))
        audit_before = await cp.audit_entries()
        async with mtls_stub(cp.mtls_target, material) as stub:
            err = await refused(stub.RenewCertificate(
                ids.RenewCertificateRequest(csr_pem=make_csr(new_private_key()).decode()), timeout=RPC_TIMEOUT))
        assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CERTIFICATE_REVOKED")
        assert await certificates_of(cp.engine, "wl-a") == []  # no certificate issued
        assert await cp.audit_entries() == audit_before
