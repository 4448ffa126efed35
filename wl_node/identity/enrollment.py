"""First start of a WL node: obtain a certificate from the CP with a one-time bootstrap token.

The node makes a new P-256 key, sends a CSR with the token over server-authenticated TLS (it has no client
certificate yet; it trusts the CA certificate ``ca.crt`` already in its PKI directory, provisioned out of band
with the token), checks what comes back, and writes ``wl-<id>.crt``/``wl-<id>.key`` atomically.

Only transient failures (UNAVAILABLE, DEADLINE_EXCEEDED, and RESOURCE_EXHAUSTED with reason RATE_LIMITED: nodes
enrolling from one address share the enrollment listener's budget) are retried, always with the same key and CSR:
the CP spends a token only when it issued a certificate for it, and answers a repeated request (same token, same key)
whose first answer was lost with the same certificate. A node that dies before writing its files has lost the
key, so the token is spent and an operator issues a new one (the node says so).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from xporty.cp.v1 import identity_service_pb2, identity_service_pb2_grpc
from xwl_runtime.backoff import Backoff
from xwl_runtime.errors import RemoteError, decode_rpc_error
from xwl_runtime.grpc_codes import TRANSIENT
from xwl_runtime.identity import Identity, identity_of_certificate, pinned_name
from xwl_runtime.pki import PkiDir, key_to_pem, make_csr, new_private_key
from xwl_runtime.ratelimit import RATE_LIMITED
from xwl_runtime.tls import KeyPair, TlsMaterial, server_only_channel

from ..settings import NodeSettings
from .files import recover_pending, write_pair

log = logging.getLogger(__name__)

ENROLL_TIMEOUT_S = 10.0
ENROLL_ATTEMPTS = 5


class EnrollmentError(Exception):
    """The node has no usable certificate and could not obtain one; the message says what to do."""


def carries_pinned_name(cert: x509.Certificate, identity: Identity) -> bool:
    """True when ``cert`` names ``identity``'s CA-assigned DNS name (certificates from before pinning do not)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return pinned_name(identity) in san.get_values_for_type(x509.DNSName)


def check_issued(cert_pem: bytes, ca_pem: bytes, identity: Identity, key: ec.EllipticCurvePrivateKey) -> None:
    """Refuse a certificate that is not ours: wrong identity, wrong key, or not signed by our CA."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    if identity_of_certificate(cert) != identity:
        raise EnrollmentError(f"the CP issued a certificate for another identity than {identity}")
    if not carries_pinned_name(cert, identity):  # peers pin that name: without it nobody could reach this node
        raise EnrollmentError(f"the CP's certificate lacks the name {pinned_name(identity)} clients pin")
    if cert.public_key() != key.public_key():
        raise EnrollmentError("the CP's certificate does not certify this node's key")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as err:
        raise EnrollmentError("the certificate is not issued by the trusted CA") from err


async def enroll(
    pki: PkiDir,
    wl_id: str,
    enroll_target: str,
    bootstrap_token: str,
    *,
    backoff: Backoff | None = None,
) -> TlsMaterial:
    """Enroll ``wl_id`` with the CP at ``enroll_target`` and store the new key pair in ``pki``."""
    identity = Identity.wl(wl_id)
    if not pki.ca_cert.exists():
        raise EnrollmentError(f"{pki.ca_cert} is missing: copy the CP's CA certificate there before enrolling")
    ca_pem = pki.ca_cert.read_bytes()
    key = new_private_key()
    request = identity_service_pb2.EnrollRequest(
        bootstrap_token=bootstrap_token, csr_pem=make_csr(key).decode()
    )
    backoff = backoff or Backoff(base_s=0.2, cap_s=3.0)
    async with server_only_channel(enroll_target, ca_pem) as channel:
        stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
        for attempt in range(1, ENROLL_ATTEMPTS + 1):
            try:
                response = await stub.Enroll(request, timeout=ENROLL_TIMEOUT_S)
                break
            except grpc.aio.AioRpcError as err:
                remote = decode_rpc_error(err)
                transient = remote.code in TRANSIENT or remote.reason == RATE_LIMITED
                if not transient or attempt == ENROLL_ATTEMPTS:
                    raise _explain(remote) from err
                log.warning("enrollment attempt failed; retrying",
                            extra={"fields": {"attempt": attempt, "code": remote.code.name}})
                await asyncio.sleep(backoff.next_delay())
    cert_pem = response.certificate_pem.encode()
    check_issued(cert_pem, ca_pem, identity, key)
    pair = KeyPair(cert_pem, key_to_pem(key))
    write_pair(pki, identity, pair)
    log.info("enrolled", extra={"fields": {"wl_id": wl_id, "expire_time": response.expire_time.ToJsonString()}})
    return TlsMaterial(ca_pem, pair)


def _explain(remote: RemoteError) -> EnrollmentError:
    if remote.code is grpc.StatusCode.UNAUTHENTICATED:
        return EnrollmentError(
            "the CP refused the bootstrap token (unknown, already used or expired): ask an operator for a new one"
        )
    return EnrollmentError(f"enrollment failed: {remote}")


def _usable(material: TlsMaterial, identity: Identity, now: dt.datetime) -> bool:
    cert = x509.load_pem_x509_certificate(material.pair.cert_pem)
    if identity_of_certificate(cert) != identity:
        raise EnrollmentError(f"the certificate in the PKI directory does not name {identity}")
    return cert.not_valid_after_utc > now


async def load_or_enroll(settings: NodeSettings, *, now: dt.datetime | None = None) -> TlsMaterial:
    """The node's TLS material from its PKI directory, enrolling first when there is no valid certificate."""
    pki = PkiDir(settings.pki_dir)
    identity = Identity.wl(settings.wl_id)
    now = now or dt.datetime.now(dt.UTC)
    recover_pending(pki, identity)
    if pki.has(identity):
        material = TlsMaterial.from_pki(pki, identity)
        if _usable(material, identity, now):
            return material
        log.warning("the node certificate has expired; enrolling again", extra={"fields": {"wl_id": settings.wl_id}})
    if not settings.bootstrap_token or not settings.cp_enroll_target:
        raise EnrollmentError(
            f"no valid certificate for {identity} in {pki.root}: start once with a bootstrap token and the CP's "
            "enrollment address"
        )
    return await enroll(pki, settings.wl_id, settings.cp_enroll_target, settings.bootstrap_token)
