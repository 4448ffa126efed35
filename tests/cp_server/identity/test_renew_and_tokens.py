"""RenewCertificate, IssueToken and GetJwks over mTLS: identity from the certificate, never from the request."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from cp_server.identity.certificates import certificates_of
from cp_server.identity.signing import verification_keys
from tests.cp_server.identity.harness import IdentityCp
from tests.cp_server.identity.rpc import mtls_stub, refused
from xporty.cp.v1 import identity_service_pb2 as pb
from xwl_runtime.clock import SystemClock
from xwl_runtime.errors import XcwlError
from xwl_runtime.identity import Identity, identity_of_certificate
from xwl_runtime.pki import make_csr, new_private_key
from xwl_runtime.tokens import TokenVerifier

WL_A = Identity.wl("wl-a")
WL_B = Identity.wl("wl-b")
OPS = Identity.ops("alice")


def _csr_claiming(identity: Identity) -> str:
    """A CSR that asks for another identity in its URI SAN and subject (the CA must ignore both)."""
    key = new_private_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.spiffe_id)]))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.spiffe_id)]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def test_renewal_certifies_the_caller_and_nobody_else(identity_cp: IdentityCp) -> None:
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(WL_A)) as stub:
        resp = await stub.RenewCertificate(pb.RenewCertificateRequest(csr_pem=_csr_claiming(WL_B)), timeout=10)
    cert = x509.load_pem_x509_certificate(resp.certificate_pem.encode())
    assert identity_of_certificate(cert) == WL_A
    assert resp.spiffe_id == WL_A.spiffe_id
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    assert uris == [WL_A.spiffe_id]
    presented = x509.load_pem_x509_certificate(identity_cp.pki.material(WL_A).pair.cert_pem)
    records = await certificates_of(identity_cp.engine, "wl-a")
    # The offline-issued certificate the caller presented is recorded on first renewal and superseded by the new one.
    assert [(r.serial, r.reason, r.superseded_by) for r in records] == [
        (format(presented.serial_number, "x"), "offline", format(cert.serial_number, "x")),
        (format(cert.serial_number, "x"), "renew", None),
    ]
    assert await certificates_of(identity_cp.engine, "wl-b") == []
    assert [e.actor for e in await identity_cp.audit_entries()] == [WL_A.spiffe_id]


async def test_renewal_refuses_operators_and_bad_csrs(identity_cp: IdentityCp) -> None:
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(OPS)) as stub:
        err = await refused(stub.RenewCertificate(
            pb.RenewCertificateRequest(csr_pem=make_csr(new_private_key()).decode()), timeout=10))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(WL_A)) as stub:
        err = await refused(stub.RenewCertificate(pb.RenewCertificateRequest(csr_pem="junk"), timeout=10))
    assert (err.code, err.metadata) == (grpc.StatusCode.INVALID_ARGUMENT, {"field": "csr_pem"})
    assert await certificates_of(identity_cp.engine, "wl-a") == []
    assert await identity_cp.audit_entries() == []


async def test_issued_token_verifies_at_the_audience_for_the_caller_only(identity_cp: IdentityCp) -> None:
    await identity_cp.register_wl("wl-a", "wl-b")
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(WL_B)) as stub:
        jwks = (await stub.GetJwks(pb.GetJwksRequest(), timeout=10)).keys
        resp = await stub.IssueToken(pb.IssueTokenRequest(audience_wl="wl-a", scopes=["orders:place"]), timeout=10)
    assert list(jwks) == verification_keys(identity_cp.ctx.jwt_key)
    expires = resp.expire_time.ToDatetime(dt.UTC)
    assert dt.timedelta(minutes=4) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=5)

    exporter = TokenVerifier(lambda: jwks, "wl-a", SystemClock())
    claims = exporter.verify(resp.token, WL_B)
    assert (claims.subject, claims.audience_wl, claims.scopes) == (WL_B, "wl-a", {"orders:place"})
    # Presented by another node than the one it was issued to, or at another exporter: refused.
    assert _reason(lambda: exporter.verify(resp.token, Identity.wl("wl-c"))) == "TOKEN_SUBJECT_MISMATCH"
    other_exporter = TokenVerifier(lambda: jwks, "wl-c", SystemClock())
    assert _reason(lambda: other_exporter.verify(resp.token, WL_B)) == "TOKEN_WRONG_AUDIENCE"


def _reason(call: Callable[[], object]) -> str:
    try:
        call()
    except XcwlError as err:
        return err.reason
    raise AssertionError("verification succeeded but should have failed")


async def test_issue_token_refusals(identity_cp: IdentityCp) -> None:
    await identity_cp.register_wl("wl-a", "wl-b")
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(WL_B)) as stub:
        scope = await refused(stub.IssueToken(
            pb.IssueTokenRequest(audience_wl="wl-a", scopes=["orders:place", "admin"]), timeout=10))
        self_aud = await refused(stub.IssueToken(pb.IssueTokenRequest(audience_wl="wl-b"), timeout=10))
        bad_aud = await refused(stub.IssueToken(pb.IssueTokenRequest(audience_wl="WL A!"), timeout=10))
        unknown_aud = await refused(stub.IssueToken(pb.IssueTokenRequest(audience_wl="wl-z"), timeout=10))
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(Identity.wl("wl-c"))) as stub:
        unregistered = await refused(stub.IssueToken(pb.IssueTokenRequest(audience_wl="wl-a"), timeout=10))
    async with mtls_stub(identity_cp.mtls_target, identity_cp.pki.material(OPS)) as stub:
        ops = await refused(stub.IssueToken(pb.IssueTokenRequest(audience_wl="wl-a"), timeout=10))
        assert len((await stub.GetJwks(pb.GetJwksRequest(), timeout=10)).keys) == 1  # any authenticated caller
    assert (scope.code, scope.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_NOT_ALLOWED")
    assert (self_aud.code, self_aud.metadata) == (grpc.StatusCode.INVALID_ARGUMENT, {"field": "audience_wl"})
    assert (bad_aud.code, bad_aud.metadata) == (grpc.StatusCode.INVALID_ARGUMENT, {"field": "audience_wl"})
    assert (unknown_aud.code, unknown_aud.metadata) == (grpc.StatusCode.INVALID_ARGUMENT, {"field": "audience_wl"})
    assert (unregistered.code, unregistered.reason) == (grpc.StatusCode.PERMISSION_DENIED, "WL_NOT_REGISTERED")
    assert (ops.code, ops.reason) == (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")
