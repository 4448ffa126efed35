"""Message size limits before work: an anonymous caller sends 30 MB Enroll requests to a real CP process.

gRPC core refuses each message from its length prefix (RESOURCE_EXHAUSTED) without buffering it, so the CP's memory
stays flat and its health answers stay fast for everyone else meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cp_server.settings import ENROLL_MAX_RECEIVE_BYTES, MAX_RECEIVE_BYTES
from tests.security.cp_process import CpProcess, cp_process
from tests.support.pki import PkiFixture
from xporty.cp.v1 import identity_service_pb2
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel, server_only_channel

ENROLL = "/xporty.cp.v1.IdentityService/Enroll"
ATTACK_BYTES = 30 * 1000 * 1000
ATTACKERS = 4
MAX_RSS_GROWTH = 20 * 1024 * 1024
MAX_HEALTH_P99_S = 0.050
MIN_PROBES = 200


def _huge_enroll() -> bytes:
    # Serialized once, up front: the attacker's own cost must not slow the probe that shares this event loop.
    return identity_service_pb2.EnrollRequest(bootstrap_token="x", csr_pem="A" * ATTACK_BYTES).SerializeToString()


async def _attack(proc: CpProcess, pki: PkiFixture, payload: bytes) -> grpc.StatusCode:
    async with server_only_channel(proc.enroll_target, pki.dir.ca_cert.read_bytes()) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(ENROLL)
        try:
            await call(payload, timeout=30)
        except grpc.aio.AioRpcError as err:
            return err.code()
    return grpc.StatusCode.OK


async def _probe(proc: CpProcess, pki: PkiFixture, stop: asyncio.Event) -> tuple[list[float], int]:
    """Health latencies from an operator's client and the CP's peak RSS, until ``stop`` and MIN_PROBES samples."""
    latencies: list[float] = []
    peak = proc.rss_bytes()
    async with secure_channel(proc.target, pki.material(Identity.ops("alice")), expected=Identity.cp()) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # connection up before measuring
        while not stop.is_set() or len(latencies) < MIN_PROBES:
            started = time.perf_counter()
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            latencies.append(time.perf_counter() - started)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            peak = max(peak, proc.rss_bytes())
            await asyncio.sleep(0.002)
    return latencies, peak


async def test_anonymous_30mb_enrolls_are_refused_unread(pki: PkiFixture, tmp_path: Path) -> None:
    payload = _huge_enroll()
    async with cp_process(pki, tmp_path) as proc:
        baseline = proc.rss_bytes()
        stop = asyncio.Event()
        probe = asyncio.create_task(_probe(proc, pki, stop))
        codes = await asyncio.gather(*(_attack(proc, pki, payload) for _ in range(ATTACKERS)))
        stop.set()
        latencies, peak = await probe
        assert proc.popen.returncode is None, "the CP died"
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * ATTACKERS
    growth = peak - baseline
    assert growth < MAX_RSS_GROWTH, f"CP RSS grew by {growth / 2**20:.1f} MiB"
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < MAX_HEALTH_P99_S, f"health p99 {p99 * 1000:.1f} ms over {len(latencies)} probes"
    with sqlite3.connect(tmp_path / "cp.db") as db:
        assert db.execute("SELECT count(*) FROM identity_certificates").fetchone() == (0,)


def test_enroll_limit_fits_a_legitimate_enroll() -> None:
    """The enrollment limit is above a real Enroll (token + CSR for one P-256 key) and far below the attack."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wl-" + "a" * 60)]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("node-" + "a" * 58 + ".example")]), critical=False)
           .sign(key, hashes.SHA256()))
    request = identity_service_pb2.EnrollRequest(
        bootstrap_token="xbt_" + "A" * 43, csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode())
    assert 4 * request.ByteSize() < ENROLL_MAX_RECEIVE_BYTES < ATTACK_BYTES // 1000
    assert ENROLL_MAX_RECEIVE_BYTES < MAX_RECEIVE_BYTES
