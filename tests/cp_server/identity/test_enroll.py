"""Online enrollment over the enrollment listener: one certificate per bootstrap token, nothing else."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import grpc
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cp_server.identity.bootstrap import BootstrapTokens
from cp_server.identity.certificates import certificate_by_fingerprint, certificates_of
from cp_server.identity.tables import bootstrap_tokens, issued_certificates
from tests.cp_server.identity.harness import IdentityCp
from tests.cp_server.identity.rpc import enroll_stub, mtls_stub, refused
from tests.support.pki import csr_asking_for
from xporty.cp.v1 import identity_service_pb2 as pb
from xwl_runtime.clock import ManualClock
from xwl_runtime.event_signing import certificate_sha256
from xwl_runtime.identity import Identity, identity_of_certificate
from xwl_runtime.pki import key_to_pem, make_csr, new_private_key
from xwl_runtime.tls import KeyPair, TlsMaterial, server_only_channel

WL_A = Identity.wl("wl-a")


async def _counts(cp: IdentityCp) -> tuple[int, int]:
    async with cp.engine.connect() as conn:
        certs = await conn.scalar(sa.select(sa.func.count()).select_from(issued_certificates))
        used = await conn.scalar(
            sa.select(sa.func.count()).select_from(bootstrap_tokens).where(bootstrap_tokens.c.used_at.is_not(None))
        )
    return int(certs or 0), int(used or 0)


async def _enroll(cp: IdentityCp, token: str, csr_pem: bytes | str) -> pb.EnrollResponse:
    csr = csr_pem.decode() if isinstance(csr_pem, bytes) else csr_pem
    async with enroll_stub(cp.enroll_target, cp.pki.dir.ca_cert.read_bytes()) as stub:
        return await stub.Enroll(pb.EnrollRequest(bootstrap_token=token, csr_pem=csr), timeout=10)


async def test_enrollment_issues_a_certificate_that_works_for_mtls(identity_cp: IdentityCp) -> None:
    token = await identity_cp.token_for("wl-a")
    async with identity_cp.engine.connect() as conn:  # only the token's hash is stored
        stored = (await conn.execute(sa.select(bootstrap_tokens))).mappings().one()
    assert token not in repr(dict(stored)) and len(stored["token_sha256"]) == 64
    key = new_private_key()
    resp = await _enroll(identity_cp, token, csr_asking_for(key, dns=("node-a.internal",)))

    cert = x509.load_pem_x509_certificate(resp.certificate_pem.encode())
    assert identity_of_certificate(cert) == WL_A
    assert resp.spiffe_id == "spiffe://xporty/wl/wl-a"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    # The CA chose the names: the pinned one only (wl-a has no registered endpoint names); the CSR's are ignored.
    assert cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == ["wl-a.wl.xporty.internal"]
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=23) < lifetime <= dt.timedelta(hours=24)
    assert resp.expire_time.ToDatetime(dt.UTC) == cert.not_valid_after_utc
    assert resp.ca_certificate_pem.encode() == identity_cp.pki.dir.ca_cert.read_bytes()

    # The new certificate authenticates the node on the mTLS listener.
    material = TlsMaterial(identity_cp.pki.dir.ca_cert.read_bytes(), KeyPair(resp.certificate_pem.encode(),
                                                                             key_to_pem(key)))
    async with mtls_stub(identity_cp.mtls_target, material) as stub:
        renewed = await stub.RenewCertificate(pb.RenewCertificateRequest(csr_pem=make_csr(new_private_key()).decode()),
                                              timeout=10)
    assert renewed.spiffe_id == WL_A.spiffe_id

    records = await certificates_of(identity_cp.engine, "wl-a")
    assert [r.reason for r in records] == ["enroll", "renew"]
    assert records[0].serial == format(cert.serial_number, "x")
    assert records[0].fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    found = await certificate_by_fingerprint(identity_cp.engine, certificate_sha256(cert))
    assert found is not None and (found.wl_id, found.pem) == ("wl-a", resp.certificate_pem)
    entries = await identity_cp.audit_entries()
    assert [(e.action, e.subject) for e in entries] == [("identity.enroll", "wl/wl-a"), ("identity.renew", "wl/wl-a")]
    assert json.loads(entries[0].after_json)["serial"] == records[0].serial
    assert (await identity_cp.audit.verify(identity_cp.engine))[0]


async def test_reused_token_is_refused_and_stores_nothing(identity_cp: IdentityCp) -> None:
    token = await identity_cp.token_for("wl-a")
    await _enroll(identity_cp, token, make_csr(new_private_key()))
    before = await _counts(identity_cp)

    err = await refused(_enroll(identity_cp, token, make_csr(new_private_key())))

    assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "BOOTSTRAP_TOKEN_INVALID")
    assert await _counts(identity_cp) == before == (1, 1)
    assert len(await identity_cp.audit_entries()) == 1


async def test_unknown_used_and_expired_tokens_look_the_same(identity_cp: IdentityCp) -> None:
    used = await identity_cp.token_for("wl-a")
    await _enroll(identity_cp, used, make_csr(new_private_key()))
    past = ManualClock(dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    expired, _ = await BootstrapTokens(identity_cp.engine, past).create("wl-b", dt.timedelta(hours=1))
    unknown = "A" * 43

    errors = [await refused(_enroll(identity_cp, t, make_csr(new_private_key()))) for t in (unknown, used, expired, "")]

    assert {(e.code, e.reason, e.message) for e in errors} == {
        (grpc.StatusCode.UNAUTHENTICATED, "BOOTSTRAP_TOKEN_INVALID", "bootstrap token is not valid")}
    assert await _counts(identity_cp) == (1, 1)
    assert len(await identity_cp.audit_entries()) == 1


def _rsa_csr() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])).sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def _tampered_csr() -> bytes:
    """A P-256 CSR whose self-signature does not verify (the signature bytes were altered)."""
    der = bytearray(x509.load_pem_x509_csr(make_csr(new_private_key())).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    csr = x509.load_der_x509_csr(bytes(der))
    return csr.public_bytes(serialization.Encoding.PEM)


async def test_bad_csr_is_invalid_argument_and_does_not_burn_the_token(identity_cp: IdentityCp) -> None:
    token = await identity_cp.token_for("wl-a")
    for csr in (b"", b"not a csr", _rsa_csr(), _tampered_csr()):
        err = await refused(_enroll(identity_cp, token, csr))
        assert (err.code, err.metadata) == (grpc.StatusCode.INVALID_ARGUMENT, {"field": "csr_pem"}), csr
    assert await _counts(identity_cp) == (0, 0)
    assert await identity_cp.audit_entries() == []

    resp = await _enroll(identity_cp, token, make_csr(new_private_key()))  # the token is still good
    assert resp.spiffe_id == WL_A.spiffe_id


async def test_concurrent_uses_of_one_token_issue_exactly_one_certificate(identity_cp: IdentityCp) -> None:
    token = await identity_cp.token_for("wl-a")
    csrs = [make_csr(new_private_key()) for _ in range(8)]

    async def attempt(csr: bytes) -> grpc.StatusCode:
        try:
            await _enroll(identity_cp, token, csr)
        except grpc.aio.AioRpcError as err:
            return err.code()
        return grpc.StatusCode.OK

    codes = await asyncio.gather(*(attempt(c) for c in csrs))

    assert sorted(c.name for c in codes) == ["OK"] + ["UNAUTHENTICATED"] * 7
    assert await _counts(identity_cp) == (1, 1)
    assert len(await identity_cp.audit_entries()) == 1


async def test_enroll_is_reachable_only_without_a_client_certificate(identity_cp: IdentityCp) -> None:
    token = await identity_cp.token_for("wl-a")
    # A caller holding a certificate (here on the mTLS listener) may not enroll, even with a good token.
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(Identity.wl("wl-b"))) as stub:
        err = await refused(stub.Enroll(pb.EnrollRequest(
            bootstrap_token=token, csr_pem=make_csr(new_private_key()).decode()), timeout=10))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")
    assert await _counts(identity_cp) == (0, 0)

    # Anonymous callers on the enrollment listener reach Enroll and health, and nothing else.
    ca_pem = identity_cp.pki.dir.ca_cert.read_bytes()
    async with enroll_stub(identity_cp.enroll_target, ca_pem) as stub:
        for call in (stub.RenewCertificate(pb.RenewCertificateRequest(), timeout=10),
                     stub.IssueToken(pb.IssueTokenRequest(audience_wl="wl-b"), timeout=10),
                     stub.GetJwks(pb.GetJwksRequest(), timeout=10)):
            err = await refused(call)
            assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "NO_IDENTITY")
    async with server_only_channel(identity_cp.enroll_target, ca_pem) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_retry_with_the_same_csr_gets_the_same_certificate_back(identity_cp: IdentityCp) -> None:
    """A node whose answer was lost after the CP committed retries with the same CSR: same certificate."""
    token = await identity_cp.token_for("wl-a")
    csr = make_csr(new_private_key())
    first = await _enroll(identity_cp, token, csr)

    again = await _enroll(identity_cp, token, csr)

    assert again.certificate_pem == first.certificate_pem and again.spiffe_id == WL_A.spiffe_id
    assert await _counts(identity_cp) == (1, 1)
    assert len(await identity_cp.audit_entries()) == 1
    # The spent token still certifies no other key.
    err = await refused(_enroll(identity_cp, token, make_csr(new_private_key())))
    assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "BOOTSTRAP_TOKEN_INVALID")
