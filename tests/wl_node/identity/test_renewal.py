"""Certificate renewal on the node: at ~50% of the lifetime, over mTLS, swapping the served certificate live."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import shutil
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cp_server.identity.certificates import certificates_of
from tests.cp_server.identity.harness import IdentityCp, running_identity_cp
from tests.support.eventually import eventually
from tests.support.pki import PkiFixture
from wl_node.identity import CertificateRenewer, enroll
from xwl_runtime.authz import table
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import ManualClock
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir, cert_to_pem, key_to_pem, new_private_key
from xwl_runtime.server import Listener, start_server
from xwl_runtime.tls import KeyPair, ReloadableServerCredentials, TlsMaterial, secure_channel

WL_A = Identity.wl("wl-a")
OPS = Identity.ops("alice")


async def _enrolled(cp: IdentityCp, root: Path) -> tuple[PkiDir, TlsMaterial]:
    await asyncio.to_thread(root.mkdir, parents=True)
    await asyncio.to_thread(shutil.copy, cp.pki.dir.ca_cert, root / "ca.crt")
    pki = PkiDir(root)
    return pki, await enroll(pki, "wl-a", cp.enroll_target, await cp.token_for("wl-a"))


def _serial(material: TlsMaterial) -> int:
    return x509.load_pem_x509_certificate(material.pair.cert_pem).serial_number


def _renewer(pki: PkiDir, target: str, material: TlsMaterial, clock: ManualClock, **kw: object) -> CertificateRenewer:
    return CertificateRenewer(pki=pki, wl_id="wl-a", cp_target=target, material=material, clock=clock,
                              poll_interval=0.02, **kw)  # type: ignore[arg-type]


async def test_renewal_time_is_half_the_lifetime_with_jitter(identity_cp: IdentityCp, tmp_path: Path) -> None:
    pki, material = await _enrolled(identity_cp, tmp_path / "node")
    cert = x509.load_pem_x509_certificate(material.pair.cert_pem)
    start, lifetime = cert.not_valid_before_utc, cert.not_valid_after_utc - cert.not_valid_before_utc
    fractions = [
        (_renewer(pki, "unused:1", material, ManualClock(), rng=random.Random(seed)).due - start) / lifetime
        for seed in range(200)
    ]
    assert all(0.4 <= f <= 0.6 for f in fractions)
    assert max(fractions) - min(fractions) > 0.15  # the jitter really spreads the renewals


def _past_clock() -> ManualClock:
    """A clock shared by the CP and the node, 15 h behind real time.

    Moving it forward to real time makes the enrollment certificate due for renewal (its 24 h started 15 h
    "ago"), while every certificate stays valid for real TLS handshakes, which use the real clock.
    """
    return ManualClock(dt.datetime.now(dt.UTC) - dt.timedelta(hours=15))


async def test_node_server_keeps_serving_with_the_renewed_certificate(
    pki: PkiFixture, sqlite_db_url: str, tmp_path: Path
) -> None:
    clock = _past_clock()
    async with running_identity_cp(pki, sqlite_db_url, clock=clock) as cp:
        await _serve_and_renew(cp, clock, tmp_path)


async def _serve_and_renew(identity_cp: IdentityCp, clock: ManualClock, tmp_path: Path) -> None:
    pki, material = await _enrolled(identity_cp, tmp_path / "node")
    creds = ReloadableServerCredentials(material)
    node = await start_server(
        registrations=[], service_names=[], listeners=[Listener("127.0.0.1:0", creds.credentials)],
        authz_table=table({}),
    )
    renewer = _renewer(pki, identity_cp.mtls_target, material, clock)
    rotated: list[TlsMaterial] = []

    async def on_rotate(new: TlsMaterial) -> None:
        creds.update(new.pair)
        rotated.append(new)

    renewer.on_rotate(on_rotate)
    stop = asyncio.Event()
    loop = asyncio.create_task(renewer.run(stop))
    ops = identity_cp.pki.material(OPS)
    try:
        async with secure_channel(f"127.0.0.1:{node.port}", ops, expected=WL_A) as before_channel:
            await health_pb2_grpc.HealthStub(before_channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            await asyncio.sleep(0.2)
            assert rotated == []  # nothing is due yet

            clock.advance(dt.timedelta(hours=15).total_seconds())  # back to real time: past 60% of 24 h
            await eventually(lambda: len(rotated) == 1, timeout=10.0)

            new = rotated[0]
            assert _serial(new) != _serial(material)
            assert renewer.material == new
            assert pki.cert(WL_A).read_bytes() == new.pair.cert_pem and pki.key(WL_A).read_bytes() == new.pair.key_pem
            # New handshakes get the new certificate; the connection opened before keeps working.
            served = await asyncio.to_thread(ssl.get_server_certificate, ("127.0.0.1", node.port), timeout=5)
            assert x509.load_pem_x509_certificate(served.encode()).serial_number == _serial(new)
            async with secure_channel(f"127.0.0.1:{node.port}", ops, expected=WL_A) as after_channel:
                resp = await health_pb2_grpc.HealthStub(after_channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert resp.status == health_pb2.HealthCheckResponse.SERVING
            await health_pb2_grpc.HealthStub(before_channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert [r.reason for r in await certificates_of(identity_cp.engine, "wl-a")] == ["enroll", "renew"]
        # The next renewal is scheduled from the new certificate, so nothing happens until then.
        assert renewer.due > clock.now() + dt.timedelta(hours=9)
        await asyncio.sleep(0.2)
        assert len(rotated) == renewer.renewals == 1
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
        await node.stop(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_renewal_retries_until_the_cp_is_back(pki: PkiFixture, sqlite_db_url: str, tmp_path: Path) -> None:
    port = _free_port()
    clock = _past_clock()
    async with running_identity_cp(pki, sqlite_db_url, clock=clock) as cp:
        node_pki, material = await _enrolled(cp, tmp_path / "node")
    renewer = _renewer(node_pki, f"127.0.0.1:{port}", material, clock, backoff=Backoff(base_s=0.01, cap_s=0.05),
                       rpc_timeout=0.5)
    stop = asyncio.Event()
    clock.advance(dt.timedelta(hours=15).total_seconds())
    loop = asyncio.create_task(renewer.run(stop))

    async def backoffs(count: int) -> None:
        """Let ``count`` backoff waits pass: the renewer waits through the (manual) clock."""
        for _ in range(count):
            await asyncio.sleep(0.05)  # an attempt against the closed port fails at once, then waits
            clock.advance(0.05)  # the backoff's cap: the wait ends, the next attempt starts

    try:
        await backoffs(10)  # the CP is down: attempts fail and back off, the old pair stays
        assert renewer.renewals == 0 and renewer.material == material
        async with running_identity_cp(pki, sqlite_db_url, clock=clock,
                                       mtls_listen=f"127.0.0.1:{port}"):
            for _ in range(200):
                if renewer.renewals:
                    break
                await backoffs(1)
            assert renewer.renewals == 1
            await backoffs(2)
            assert renewer.renewals == 1  # renewed once: the next renewal is hours away
        assert _serial(renewer.material) != _serial(material)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)


def test_a_certificate_from_before_pinning_is_due_for_renewal_at_once(pki: PkiFixture) -> None:
    """Peers pin <wl>.wl.xporty.internal: a certificate without it (issued before pinning) is replaced first thing."""
    ca = pki.dir.load_ca()
    key = new_private_key()
    now = dt.datetime.now(dt.UTC)
    legacy = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, WL_A.spiffe_id)]))
        .issuer_name(ca.certificate.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(hours=24))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(WL_A.spiffe_id),
                                                    x509.DNSName("localhost")]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    material = TlsMaterial(pki.dir.ca_cert.read_bytes(), KeyPair(cert_to_pem(legacy), key_to_pem(key)))
    renewer = _renewer(pki.dir, "unused:1", material, ManualClock(now))
    assert renewer.due == legacy.not_valid_before_utc
    current = _renewer(pki.dir, "unused:1", pki.material(WL_A), ManualClock(now))
    assert current.due > now + dt.timedelta(hours=9)  # a pinned certificate waits for about half its life
