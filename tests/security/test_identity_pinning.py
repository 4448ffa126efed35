"""Every client proves who it reached, and no CSR name reaches a certificate.

The attacker is a WL (here ``wl-c`` or ``wl-b``) holding its own GENUINE key and certificate from our CA. It
serves a fake CP or a fake peer with that certificate at an address the victim dials. Every client of the system
(the node's CP channel and policy agent, enrollment, renewal, the peer client, ``xcwl``'s operator and node
clients) pins the identity it expects, so the TLS handshake fails (UNAVAILABLE) and not one request reaches the
impostor; the same clients reach the right identity.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from cryptography import x509

from cp_server.identity.certificates import certificates_of
from cp_server.identity.tables import issued_certificates
from tests.cp_server.core_harness import RPC_TIMEOUT, rpc_error, running_cp, wl_proto
from tests.cp_server.identity.harness import IdentityCp, running_identity_cp
from tests.cp_server.identity.rpc import enroll_stub, mtls_stub
from tests.support.databases import sqlite_url
from tests.support.pki import PkiFixture, csr_asking_for
from tests.wl_node.conftest import node_settings
from tests.wl_node.fake_cp import FakeCp, ScriptedPolicyService, make_view, start_fake_cp
from tests.wl_node.orders.harness import Exporter, place_request, policy_view, start_exporter, token
from tests.xcwl.runner import xcwl
from wl_node.app import build_node
from wl_node.catalog.tables import imported_offers
from wl_node.cp_channel import CpChannel, cp_channel_factory
from wl_node.identity import CertificateRenewer, EnrollmentError, enroll
from wl_node.orders.tables import orders
from wl_node.peers.client import PeerConfig, PeerError, TraderPeers
from wl_node.peers.tokens import TokenCache
from wl_node.policy.state import PolicyState
from xcwl.bench.catalog_nodes import World, start_node
from xcwl.errors import CliError
from xcwl.node_client import NodeClient, NodeRpcError
from xcwl.ops_client import OpsClient
from xporty.cp.v1 import admin_service_pb2 as admin_pb
from xporty.cp.v1 import identity_service_pb2 as id_pb
from xporty.cp.v1 import policy_service_pb2, policy_service_pb2_grpc
from xwl_runtime.authz import table
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import ManualClock, SystemClock
from xwl_runtime.identity import Identity, pinned_name
from xwl_runtime.pki import PkiDir, new_private_key
from xwl_runtime.server import Listener, RunningServer, start_server
from xwl_runtime.tls import KeyPair, ReloadableServerCredentials, TlsMaterial, server_tls_only_credentials

WL_A, WL_B, WL_C = Identity.wl("wl-a"), Identity.wl("wl-b"), Identity.wl("wl-c")
OPS = Identity.ops("alice")


def genuine_with_dialled_names(pki: PkiFixture, identity: Identity) -> TlsMaterial:
    """A genuine certificate of ``identity`` from our CA that ALSO names the address the victim dials.

    The worst case for the victim (every WL certificate carried ``localhost``/``127.0.0.1`` before the CA chose
    names itself): plain host-name verification would accept it, so only pinning can refuse it.
    """
    issued = pki.dir.load_ca().issue(identity, dns_names=("localhost", "127.0.0.1"))
    pki.dir.store(issued, identity)  # servers built from the PKI directory (exporters) serve this one
    return TlsMaterial(pki.dir.ca_cert.read_bytes(), KeyPair(issued.cert_pem, issued.key_pem))


def _names(cert_pem: bytes | str) -> tuple[list[str], list[str], list[str]]:
    """(URIs, DNS names, IPs) of a certificate's SAN."""
    data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    san = x509.load_pem_x509_certificate(data).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (san.get_values_for_type(x509.UniformResourceIdentifier), san.get_values_for_type(x509.DNSName),
            [str(ip) for ip in san.get_values_for_type(x509.IPAddress)])


@pytest.fixture
async def identity_cp(pki: PkiFixture, db_url: str) -> AsyncIterator[IdentityCp]:
    """A real CP serving IdentityService (production pipeline, both listeners) on SQLite and PostgreSQL."""
    async with running_identity_cp(pki, db_url) as cp:
        yield cp


# --- fake CP (a WL's genuine certificate on the CP's address) ------------------------------------------------


@pytest.fixture
async def impostor_cp(pki: PkiFixture) -> AsyncIterator[FakeCp]:
    """A PolicyService with a valid view, served with wl-c's genuine certificate."""
    cp = await start_fake_cp(genuine_with_dialled_names(pki, WL_C), ScriptedPolicyService(make_view("wl-a", 7)))
    try:
        yield cp
    finally:
        await cp.stop()


async def test_node_cp_channel_refuses_a_fake_cp_and_reaches_the_real_one(
    pki: PkiFixture, impostor_cp: FakeCp
) -> None:
    real = await start_fake_cp(pki.material(Identity.cp()), ScriptedPolicyService(make_view("wl-a", 7)))
    request = policy_service_pb2.GetPoliciesRequest(wl_id="wl-a")
    try:
        for target, refused in ((impostor_cp.target, True), (real.target, False)):
            channel = CpChannel(cp_channel_factory(target, reconnect_cap_s=0.2), pki.material(WL_A), identity=WL_A)
            try:
                async with channel.lease() as ch:
                    call = policy_service_pb2_grpc.PolicyServiceStub(ch).GetPolicies(request, timeout=3)
                    if refused:
                        with pytest.raises(grpc.aio.AioRpcError) as err:
                            await call
                        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
                    else:
                        assert (await call).version == 7
            finally:
                await channel.close()
        assert impostor_cp.service.seen.pulls == []  # not one request reached the impostor
        assert len(real.service.seen.pulls) == 1
    finally:
        await real.stop()


async def test_policy_agent_of_a_running_node_never_takes_a_view_from_a_fake_cp(
    tmp_path: Path, pki: PkiFixture, impostor_cp: FakeCp
) -> None:
    app = await build_node(node_settings(tmp_path, pki, impostor_cp.target))
    try:
        await asyncio.sleep(1.0)  # several reconnect attempts (cap 0.3 s) and pulls (every 0.3 s)
        assert app.state.current() is None and app.state.version == 0
        assert not app.health.serving
        seen = impostor_cp.service.seen
        assert (seen.watches, seen.pulls, seen.reports) == ([], [], [])
        state = tmp_path / "state"  # no LKG written (the node's data key file is its own, made at start)
        assert not state.exists() or [p.name for p in state.iterdir()] in ([], ["data-keys.json"])
    finally:
        await app.stop(0)


async def _bare_server(listener: Listener) -> RunningServer:
    return await start_server(registrations=[], service_names=[], listeners=[listener], authz_table=table({}))


async def test_enrollment_refuses_a_fake_enrollment_listener(pki: PkiFixture, tmp_path: Path) -> None:
    credentials = server_tls_only_credentials(genuine_with_dialled_names(pki, WL_C))
    fake = await _bare_server(Listener("127.0.0.1:0", credentials))
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    shutil.copy(pki.dir.ca_cert, node_dir / "ca.crt")
    try:
        with pytest.raises(EnrollmentError) as err:
            await enroll(PkiDir(node_dir), "wl-a", f"127.0.0.1:{fake.port}", "xbt_token-the-impostor-wants",
                         backoff=Backoff(base_s=0.01, cap_s=0.02))
        assert "UNAVAILABLE" in str(err.value)
        assert sorted(p.name for p in node_dir.iterdir()) == ["ca.crt"]  # no key, no certificate written
    finally:
        await fake.stop(0)


async def test_renewal_refuses_a_fake_cp_and_keeps_the_current_pair(pki: PkiFixture) -> None:
    credentials = ReloadableServerCredentials(genuine_with_dialled_names(pki, WL_C)).credentials
    fake = await _bare_server(Listener("127.0.0.1:0", credentials))
    material = pki.material(WL_A)
    before = (pki.dir.cert(WL_A).read_bytes(), pki.dir.key(WL_A).read_bytes())
    renewer = CertificateRenewer(pki=pki.dir, wl_id="wl-a", cp_target=f"127.0.0.1:{fake.port}", material=material,
                                 clock=ManualClock(), rpc_timeout=3)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await renewer.renew_once()
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        assert renewer.material == material and renewer.renewals == 0
        assert (pki.dir.cert(WL_A).read_bytes(), pki.dir.key(WL_A).read_bytes()) == before
    finally:
        await fake.stop(0)


async def test_xcwl_operator_client_refuses_a_fake_cp(pki: PkiFixture, impostor_cp: FakeCp) -> None:
    async with OpsClient.connect(impostor_cp.target, pki.material(OPS), timeout=3) as client:
        with pytest.raises(CliError) as err:
            await client.get_policies("wl-a")
    # The handshake failed; the CLI then names the genuine identity the impostor holds (no request was sent).
    assert str(err.value) == f"--cp {impostor_cp.target} is the WL node of wl-c, not the CP: give the CP's listener"
    assert impostor_cp.service.seen.pulls == []
    real = await start_fake_cp(pki.material(Identity.cp()), ScriptedPolicyService(make_view("wl-a", 7)))
    try:
        async with OpsClient.connect(real.target, pki.material(OPS), timeout=3) as client:
            assert (await client.get_policies("wl-a")).version == 7
    finally:
        await real.stop()


# --- fake peer (a WL's genuine certificate on another WL's endpoint) ---------------------------------------


class _Recorder(grpc.aio.ServerInterceptor):
    """Counts every RPC that reached the server (the handshake succeeded)."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        self.methods.append(details.method)
        return await continuation(details)


class _NoCp:
    def lease(self) -> Any:
        raise AssertionError("the peer client never calls the CP")

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


async def _peers_of_b(pki: PkiFixture, endpoint_of_a: str) -> TraderPeers:
    """wl-b's peer client, whose policy view (from the CP) says wl-a's TraderService is at ``endpoint_of_a``."""
    clock = SystemClock()
    state = PolicyState("wl-b", clock, dt.timedelta(minutes=10))
    await state.apply(policy_view("wl-b", 1, ["wl-a"], endpoints={"wl-a": endpoint_of_a}))
    tokens = TokenCache(_NoCp(), clock)
    now = clock.now()
    tokens.put("wl-a", token("wl-b"), now, now + dt.timedelta(minutes=5))
    return TraderPeers(state, pki.material(WL_B), tokens, identity=WL_B,
                       config=PeerConfig(order_timeout_s=2.0))


async def test_peer_client_refuses_a_fake_exporter_and_reaches_the_registered_one(
    pki: PkiFixture, sqlite_db_url: str, tmp_path: Path
) -> None:
    # wl-c runs a complete exporter with wl-c's genuine certificate and wl-b as a peer: if the handshake let
    # wl-b's client through, the impostor would see the order and the importer's token.
    recorder = _Recorder()
    genuine_with_dialled_names(pki, WL_C)
    impostor: Exporter = await start_exporter(pki, sqlite_url(tmp_path, "impostor"), wl_id="wl-c",
                                              peers=["wl-b"], interceptors=[recorder])
    await impostor.add_offer("o1", stock=10)
    real = await start_exporter(pki, sqlite_db_url)
    await real.add_offer("o1", stock=10)
    fooled = await _peers_of_b(pki, impostor.target)
    honest = await _peers_of_b(pki, real.target)
    try:
        with pytest.raises(PeerError) as err:
            await fooled.place_order("wl-a", place_request("k1"), fooled.deadline(None))
        assert err.value.code is grpc.StatusCode.UNAVAILABLE
        assert recorder.methods == []  # no request (and no token) ever reached the impostor
        assert await impostor.count(orders) == 0
        order = await honest.place_order("wl-a", place_request("k1"), honest.deadline(None))
        assert order.idempotency_key == "k1" and await real.count(orders) == 1
    finally:
        await fooled.close()
        await honest.close()
        await impostor.stop()
        await real.stop()


async def test_catalog_sync_never_pulls_offers_from_a_fake_exporter(pki: PkiFixture, tmp_path: Path) -> None:
    recorder = _Recorder()
    credentials = ReloadableServerCredentials(genuine_with_dialled_names(pki, WL_C)).credentials
    impostor = await start_server(registrations=[], service_names=[], listeners=[Listener("127.0.0.1:0", credentials)],
                                  authz_table=table({}), extra_interceptors=[recorder])
    world = World()
    importer = await start_node("wl-b", sqlite_url(tmp_path, "b"), pki.dir)
    world.add_wl(importer, "XPY-B")
    world.add_remote_wl("wl-a", f"127.0.0.1:{impostor.port}", "XPY-A")  # the view points wl-a at the impostor
    world.pair("wl-a", "wl-b", fx_rate="2")
    try:
        await world.publish()
        await asyncio.sleep(1.0)  # the sync worker for wl-a has tried (and backed off) several times
        assert recorder.methods == []  # neither ListOffers nor WatchOffers reached the impostor
        async with importer.engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(imported_offers)) == 0
    finally:
        await world.close()
        await impostor.stop(0)


async def test_xcwl_node_client_refuses_a_node_of_another_wl(pki: PkiFixture, sqlite_db_url: str) -> None:
    recorder = _Recorder()
    genuine_with_dialled_names(pki, WL_C)
    impostor = await start_exporter(pki, sqlite_db_url, wl_id="wl-c", peers=["wl-b"], interceptors=[recorder])
    shop = Identity.app("wl-a", "shop")
    try:
        async with NodeClient.connect(impostor.target, pki.material(shop), expected=WL_A, timeout=3) as client:
            with pytest.raises(NodeRpcError) as err:
                await client.withdraw("o1")
        assert err.value.remote.code is grpc.StatusCode.UNAVAILABLE
        assert recorder.methods == []
        # Pinning wl-c (the node really serving there) gets through the handshake to the node's own checks.
        async with NodeClient.connect(impostor.target, pki.material(Identity.app("wl-c", "shop")),
                                      expected=WL_C, timeout=3) as client:
            with pytest.raises(NodeRpcError) as reached:
                await client.withdraw("o1")
        assert reached.value.remote.code is not grpc.StatusCode.UNAVAILABLE
        assert recorder.methods != []
    finally:
        await impostor.stop()


# --- names: only the CA chooses them ------------------------------------------------------------------------

HOSTILE_DNS = ("cp.xporty.internal", "wl-b.wl.xporty.internal", "*.example", "localhost", "127.0.0.1", "::1",
               "evil.example")
HOSTILE_URIS = ("spiffe://xporty/cp", "spiffe://xporty/wl/wl-b", "https://evil.example/")


async def test_enrollment_certificate_carries_only_the_names_the_ca_chose(identity_cp: IdentityCp) -> None:
    await identity_cp.register_wl("wl-a", dns_names=("trader.wl-a.example.com",))
    csr = csr_asking_for(new_private_key(), dns=HOSTILE_DNS, uris=HOSTILE_URIS, common_name="spiffe://xporty/cp")
    async with enroll_stub(identity_cp.enroll_target, identity_cp.pki.dir.ca_cert.read_bytes()) as stub:
        resp = await stub.Enroll(id_pb.EnrollRequest(bootstrap_token=await identity_cp.token_for("wl-a"),
                                                     csr_pem=csr.decode()), timeout=10)
    assert _names(resp.certificate_pem) == (
        [WL_A.spiffe_id], ["wl-a.wl.xporty.internal", "trader.wl-a.example.com"], [])


async def test_renewal_certificate_carries_only_the_names_the_ca_chose(identity_cp: IdentityCp) -> None:
    await identity_cp.register_wl("wl-a", dns_names=("trader.wl-a.example.com",))
    csr = csr_asking_for(new_private_key(), dns=HOSTILE_DNS, uris=HOSTILE_URIS)
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(WL_A)) as stub:
        resp = await stub.RenewCertificate(id_pb.RenewCertificateRequest(csr_pem=csr.decode()), timeout=10)
    assert _names(resp.certificate_pem) == (
        [WL_A.spiffe_id], ["wl-a.wl.xporty.internal", "trader.wl-a.example.com"], [])
    # What is recorded is exactly what was issued.
    records = await certificates_of(identity_cp.engine, "wl-a")
    assert records[-1].pem == resp.certificate_pem


async def test_the_ca_itself_refuses_wildcards_and_reserved_names(pki: PkiFixture) -> None:
    ca = pki.dir.load_ca()
    for name in ("*.example", "cp.xporty.internal", "wl-b.wl.xporty.internal", "XPORTY.INTERNAL"):
        with pytest.raises(ValueError, match="does not certify"):
            ca.issue(WL_A, dns_names=(name,))
    # The pinned name is always there and always the identity's own.
    assert _names(ca.issue(WL_A).cert_pem)[1] == [pinned_name(WL_A)]
    assert _names(ca.issue(Identity.cp()).cert_pem)[1] == ["cp.xporty.internal"]


async def test_enrollment_and_renewal_write_nothing_for_a_refused_csr(identity_cp: IdentityCp) -> None:
    # A CSR the CA cannot sign is refused before anything is recorded or audited.
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(WL_A)) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RenewCertificate(id_pb.RenewCertificateRequest(csr_pem="-----BEGIN junk"), timeout=10)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    async with identity_cp.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(issued_certificates)) == 0
    assert await identity_cp.audit_entries() == []


# --- the registry's endpoint names: operator-set, validated --------------------------------------------------

BAD_NAMES = ["*.example", "*", "cp.xporty.internal", "wl-b.wl.xporty.internal", "localhost", "127.0.0.1", "::1",
             "bad_name.example", "-lead.example", "a" * 64 + ".example", "x." * 127 + "com", "", "trail.example.",
             "host.123"]


async def test_registry_refuses_names_that_would_let_a_wl_pose_as_someone_else(pki: PkiFixture, db_url: str) -> None:
    async with running_cp(pki, db_url) as cp:
        await cp.register("wl-a")
        before = await cp.state()
        admin = await cp.admin()
        for name in BAD_NAMES:
            wl = wl_proto("wl-z")
            wl.dns_names.extend(["ok.example.com", name])
            code, reason, meta = await rpc_error(admin.RegisterWl(admin_pb.RegisterWlRequest(white_label=wl),
                                                                  timeout=RPC_TIMEOUT))
            assert (code, reason, meta.get("field")) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                                                         "white_label.dns_names[1]"), name
            update = admin_pb.UpdateWlRequest(wl_id="wl-a", dns_names=admin_pb.DnsNames(names=[name]))
            code, reason, meta = await rpc_error(admin.UpdateWl(update, timeout=RPC_TIMEOUT))
            assert (code, meta.get("field")) == (grpc.StatusCode.INVALID_ARGUMENT, "dns_names.names[0]"), name
        assert await cp.state() == before  # no version, no audit row
        listed = await admin.ListWls(admin_pb.ListWlsRequest(), timeout=RPC_TIMEOUT)
        assert [(w.wl_id, list(w.dns_names)) for w in listed.white_labels] == [("wl-a", [])]


async def test_registry_bounds_the_number_of_names(pki: PkiFixture, db_url: str) -> None:
    async with running_cp(pki, db_url) as cp:
        before = await cp.state()
        wl = wl_proto("wl-z")
        wl.dns_names.extend(f"n{i}.example.com" for i in range(9))
        code, _, meta = await rpc_error((await cp.admin()).RegisterWl(admin_pb.RegisterWlRequest(white_label=wl),
                                                                      timeout=RPC_TIMEOUT))
        assert (code, meta.get("field")) == (grpc.StatusCode.INVALID_ARGUMENT, "white_label.dns_names")
        assert await cp.state() == before


async def test_operator_set_names_reach_the_next_certificate_and_nothing_else(pki: PkiFixture, db_url: str) -> None:
    async with running_cp(pki, db_url) as cp:
        admin = await cp.admin()
        wl = wl_proto("wl-a")
        wl.dns_names.extend(["Trader.WL-A.example.com", "trader.wl-a.example.com"])
        registered = await admin.RegisterWl(admin_pb.RegisterWlRequest(white_label=wl), timeout=RPC_TIMEOUT)
        assert list(registered.white_label.dns_names) == ["trader.wl-a.example.com"]  # normalized, de-duplicated
        updated = await admin.UpdateWl(admin_pb.UpdateWlRequest(
            wl_id="wl-a", dns_names=admin_pb.DnsNames(names=["wl-a.partner.example"])), timeout=RPC_TIMEOUT)
        assert list(updated.white_label.dns_names) == ["wl-a.partner.example"]
        kept = await admin.UpdateWl(admin_pb.UpdateWlRequest(wl_id="wl-a", name="Renamed"), timeout=RPC_TIMEOUT)
        assert list(kept.white_label.dns_names) == ["wl-a.partner.example"]  # unset keeps the names
        token = (await admin.CreateBootstrapToken(admin_pb.CreateBootstrapTokenRequest(wl_id="wl-a"),
                                                  timeout=RPC_TIMEOUT)).token
        csr = csr_asking_for(new_private_key(), dns=HOSTILE_DNS, uris=HOSTILE_URIS)
        async with enroll_stub(f"127.0.0.1:{cp.app.enroll_port}", pki.dir.ca_cert.read_bytes()) as stub:
            resp = await stub.Enroll(id_pb.EnrollRequest(bootstrap_token=token, csr_pem=csr.decode()), timeout=10)
        assert _names(resp.certificate_pem) == ([WL_A.spiffe_id], ["wl-a.wl.xporty.internal", "wl-a.partner.example"],
                                                [])
        cleared = await admin.UpdateWl(admin_pb.UpdateWlRequest(wl_id="wl-a", dns_names=admin_pb.DnsNames()),
                                       timeout=RPC_TIMEOUT)
        assert list(cleared.white_label.dns_names) == []


async def test_offline_issuance_never_gives_a_wl_loopback_wildcard_or_reserved_names(tmp_path: Path) -> None:
    pki_dir = tmp_path / "pki"
    init = await xcwl("pki", "init", "--dir", str(pki_dir), "--dns", "cp.example.com", "--dns", "10.0.0.5")
    assert init.returncode == 0, init.stderr
    assert _names((pki_dir / "cp.crt").read_bytes()) == (
        ["spiffe://xporty/cp"], ["cp.xporty.internal", "cp.example.com"], ["10.0.0.5"])
    for bad in ("127.0.0.1", "*.example", "cp.xporty.internal"):  # the rest as in the registry test above
        refused = await xcwl("pki", "issue", "--dir", str(pki_dir), "--wl", "wl-a", "--dns", bad)
        assert refused.returncode == 2 and refused.stderr.startswith("xcwl: error: --dns"), (bad, refused.stderr)
        assert not (pki_dir / "wl-wl-a.crt").exists() and not (pki_dir / "wl-wl-a.key").exists()
    issued = await xcwl("pki", "issue", "--dir", str(pki_dir), "--wl", "wl-a", "--dns", "trader.wl-a.example")
    assert issued.returncode == 0, issued.stderr
    assert _names((pki_dir / "wl-wl-a.crt").read_bytes()) == (
        [WL_A.spiffe_id], ["wl-a.wl.xporty.internal", "trader.wl-a.example"], [])
