"""The shared server stack: mTLS required, identities from certificates, health and reflection via grpcurl."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import grpcurl
from tests.support.pki import PkiFixture
from xwl_runtime.authz import table
from xwl_runtime.identity import Identity
from xwl_runtime.server import Listener, RunningServer, start_server
from xwl_runtime.tls import ReloadableServerCredentials, TlsMaterial, secure_channel

OPS = Identity.ops("alice")


async def _start(pki: PkiFixture) -> tuple[RunningServer, ReloadableServerCredentials]:
    creds = ReloadableServerCredentials(pki.material(Identity.cp()))
    server = await start_server(
        registrations=[], service_names=[], listeners=[Listener("127.0.0.1:0", creds.credentials)],
        authz_table=table({}),
    )
    return server, creds


async def _health(port: int, material: TlsMaterial) -> int:
    async with secure_channel(f"127.0.0.1:{port}", material, expected=Identity.cp()) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        resp = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        return resp.status


async def test_health_serving_over_mtls(pki: PkiFixture) -> None:
    server, _ = await _start(pki)
    try:
        assert await _health(server.port, pki.material(OPS)) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(0)


@pytest.mark.parametrize("kind", ["foreign_ca", "expired"])
async def test_bad_client_certificates_are_refused_at_handshake(pki: PkiFixture, kind: str) -> None:
    server, _ = await _start(pki)
    material = pki.foreign_material(OPS) if kind == "foreign_ca" else pki.expired_material(OPS)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _health(server.port, material)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


async def test_no_client_certificate_is_refused(pki: PkiFixture) -> None:
    server, _ = await _start(pki)
    ca, _, _ = pki.files(OPS)
    try:
        result = await grpcurl.arun(
            ["-connect-timeout", "2", *grpcurl.tls_args(ca), f"127.0.0.1:{server.port}", "grpc.health.v1.Health/Check"]
        )
        assert result.returncode != 0
        assert "failed to dial" in result.stderr.lower()
        # The same from a gRPC client that trusts the CA but presents no certificate.
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{server.port}", grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
        ) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


async def test_grpcurl_lists_services_and_checks_health(pki: PkiFixture) -> None:
    server, _ = await _start(pki)
    ca, cert, key = pki.files(OPS)
    try:
        listed = await grpcurl.arun([*grpcurl.tls_args(ca, cert, key), f"127.0.0.1:{server.port}", "list"])
        assert listed.returncode == 0, listed.stderr
        assert "grpc.health.v1.Health" in listed.stdout.split()
        health = await grpcurl.arun(
            [*grpcurl.tls_args(ca, cert, key), f"127.0.0.1:{server.port}", "grpc.health.v1.Health/Check"]
        )
        assert health.returncode == 0, health.stderr
        assert grpcurl.parse_stream(health.stdout) == [{"status": "SERVING"}]
    finally:
        await server.stop(0)


async def test_server_certificate_rotates_without_restart(pki: PkiFixture) -> None:
    server, creds = await _start(pki)
    try:
        rotated = pki.dir.load_ca().issue(Identity.cp())
        from xwl_runtime.tls import KeyPair

        creds.update(KeyPair(rotated.cert_pem, rotated.key_pem))
        # A new connection (new channel) handshakes with the rotated certificate.
        async with secure_channel(f"127.0.0.1:{server.port}", pki.material(OPS), expected=Identity.cp()) as channel:
            await channel.channel_ready()
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        # Verify the serial the server presents now is the rotated one.
        import ssl

        pem = ssl.get_server_certificate(("127.0.0.1", server.port), timeout=5)
        from cryptography import x509

        assert x509.load_pem_x509_certificate(pem.encode()).serial_number == rotated.certificate.serial_number
    finally:
        await server.stop(0)
