"""IdentityService: enrollment, certificate renewal, short-lived JWTs and the JWKS.

Who may call what (see ``component.AUTHZ``): Enroll only without a client certificate (the enrollment
listener); RenewCertificate and IssueToken only WL nodes, whose identity comes from their mTLS certificate and
never from the request; GetJwks any authenticated caller.

Enrollment order, chosen so that a typo does not burn a token: the CSR is validated first (INVALID_ARGUMENT,
token untouched); then one transaction consumes the token, signs, records the certificate and writes the audit
row. If anything in that transaction fails the token stays unused, so a token is spent exactly when a
certificate was issued for it. A node that lost the answer retries with the same CSR and gets the same
certificate back (within ``ENROLL_REPLAY_WINDOW``); the spent token certifies no other key.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.trust.revocations import is_revoked
from xporty.cp.v1 import identity_pb2
from xporty.cp.v1 import identity_service_pb2 as pb
from xporty.cp.v1 import identity_service_pb2_grpc as pb_grpc
from xwl_runtime import correlation
from xwl_runtime.clock import Clock
from xwl_runtime.errors import InvalidArgument, PermissionDenied, Unauthenticated
from xwl_runtime.identity import Identity, Kind, identity_of_certificate
from xwl_runtime.peer_guard import peer_certificate, revoked_error
from xwl_runtime.pipeline import caller
from xwl_runtime.pki import CertificateAuthority
from xwl_runtime.tokens import GRANTABLE_SCOPES, MAX_LIFETIME, SCOPE_PLACE_ORDERS, issue_token

from .bootstrap import BootstrapTokens, token_hash
from .certificates import enrollment_replay, record_issued, validate_csr
from .registry import WlRegistry
from .signing import verification_keys

if TYPE_CHECKING:
    from cp_server.audit.log import AuditLog

log = logging.getLogger(__name__)

ENROLL_REPLAY_WINDOW = dt.timedelta(hours=1)
"""How long a node may repeat an enrollment whose answer it lost (same token, same key)."""


def _timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    """Thin translation between IdentityService and the CA, the token store, the registry and the audit log."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        ca: CertificateAuthority,
        bootstrap: BootstrapTokens,
        registry: WlRegistry,
        audit: AuditLog,
        clock: Clock,
        jwt_key: ec.EllipticCurvePrivateKey,
        cert_lifetime: dt.timedelta,
        token_lifetime: dt.timedelta,
        signing_key: Callable[[], ec.EllipticCurvePrivateKey] | None = None,
        published_keys: Callable[[], Sequence[identity_pb2.VerificationKey]] | None = None,
    ) -> None:
        """``signing_key``/``published_keys`` follow key rotation (``cp_server.trust.token_keys``); without them
        the CP signs with ``jwt_key`` and publishes only it."""
        if token_lifetime > MAX_LIFETIME:
            raise ValueError(f"token lifetime must be at most {MAX_LIFETIME}")
        self._engine = engine
        self._ca = ca
        self._ca_pem = ca.cert_pem.decode()
        self._bootstrap = bootstrap
        self._registry = registry
        self._audit = audit
        self._clock = clock
        jwks = verification_keys(jwt_key)
        self._signing_key = signing_key or (lambda: jwt_key)
        self._published_keys = published_keys or (lambda: jwks)
        self._cert_lifetime = cert_lifetime
        self._token_lifetime = token_lifetime

    async def Enroll(
        self, request: pb.EnrollRequest, context: grpc.aio.ServicerContext[pb.EnrollRequest, pb.EnrollResponse]
    ) -> pb.EnrollResponse:
        csr = validate_csr("csr_pem", request.csr_pem)
        try:
            cert, identity = await self._issue(csr, reason="enroll", token=request.bootstrap_token)
        except Unauthenticated:
            replayed = await self._replay(request.bootstrap_token, csr)
            if replayed is None:
                raise
            cert, identity = replayed
        return pb.EnrollResponse(**self._response_fields(cert, identity))

    async def RenewCertificate(
        self,
        request: pb.RenewCertificateRequest,
        context: grpc.aio.ServicerContext[pb.RenewCertificateRequest, pb.RenewCertificateResponse],
    ) -> pb.RenewCertificateResponse:
        identity = caller()
        if identity.kind is not Kind.WL:  # also guaranteed by the authz table; kept next to the use
            raise PermissionDenied("only WL nodes renew certificates here", reason="IDENTITY_NOT_ALLOWED")
        csr = validate_csr("csr_pem", request.csr_pem)
        peer = peer_certificate(context)
        cert, _ = await self._issue(csr, reason="renew", identity=identity,
                                    caller_serial=peer.serial if peer is not None else None)
        return pb.RenewCertificateResponse(**self._response_fields(cert, identity))

    async def IssueToken(
        self,
        request: pb.IssueTokenRequest,
        context: grpc.aio.ServicerContext[pb.IssueTokenRequest, pb.IssueTokenResponse],
    ) -> pb.IssueTokenResponse:
        subject = caller()
        if subject.kind is not Kind.WL:
            raise PermissionDenied("only WL nodes obtain peer tokens", reason="IDENTITY_NOT_ALLOWED")
        audience = request.audience_wl
        try:
            Identity.wl(audience)
        except ValueError as err:
            raise InvalidArgument.field("audience_wl", str(err)) from err
        if audience == subject.wl_id:
            raise InvalidArgument.field("audience_wl", "must be another WL than the caller")
        scopes = set(request.scopes) or {SCOPE_PLACE_ORDERS}
        refused = sorted(scopes - GRANTABLE_SCOPES)
        if refused:
            raise PermissionDenied(
                f"scopes not grantable: {', '.join(refused)}", reason="SCOPE_NOT_ALLOWED",
                metadata={"scopes": " ".join(refused)},
            )
        if not await self._registry.is_registered(subject.wl_id):
            raise PermissionDenied("the caller's WL is not registered", reason="WL_NOT_REGISTERED")
        if not await self._registry.is_registered(audience):
            raise InvalidArgument.field("audience_wl", "not a registered WL")
        issued = issue_token(
            self._signing_key(), subject=subject, audience_wl=audience, scopes=scopes, now=self._clock.now(),
            lifetime=self._token_lifetime,
        )
        log.info("token issued", extra={"fields": {"sub": subject.spiffe_id, "aud": audience, "jti": issued.jti}})
        return pb.IssueTokenResponse(token=issued.token, expire_time=_timestamp(issued.expires_at))

    async def GetJwks(
        self, request: pb.GetJwksRequest, context: grpc.aio.ServicerContext[pb.GetJwksRequest, pb.GetJwksResponse]
    ) -> pb.GetJwksResponse:
        return pb.GetJwksResponse(keys=self._published_keys())

    # --- internals -----------------------------------------------------------------------------------------

    async def _replay(self, token: str, csr_pem: bytes) -> tuple[x509.Certificate, Identity] | None:
        """A retried enrollment (same token, same key) whose first answer was lost gets the same certificate."""
        if not token:
            return None
        cert = await enrollment_replay(self._engine, token_sha256=token_hash(token), csr_pem=csr_pem,
                                       now=self._clock.now(), window=ENROLL_REPLAY_WINDOW)
        if cert is None:
            return None
        identity = identity_of_certificate(cert)
        if identity is None:
            return None
        log.info("enrollment replayed", extra={"fields": {"wl_id": identity.wl_id}})
        return cert, identity

    async def _issue(
        self, csr_pem: bytes, *, reason: str, token: str = "", identity: Identity | None = None,
        caller_serial: str | None = None,
    ) -> tuple[x509.Certificate, Identity]:
        """Consume the token (enrollment), sign, record and audit in one transaction."""
        now = self._clock.now()
        async with self._engine.begin() as conn:
            if identity is None:
                identity = Identity.wl(await self._bootstrap.consume_in(conn, token))
                spent: str | None = token_hash(token)
            else:
                spent = None
            try:
                cert = self._ca.sign_csr(csr_pem, identity, lifetime=self._cert_lifetime, now=now)
            except ValueError as err:  # validated above; kept so a CA refusal is never an INTERNAL
                raise InvalidArgument.field("csr_pem", str(err)) from err
            record = await record_issued(conn, wl_id=identity.wl_id, cert=cert, reason=reason, now=now,
                                         token_sha256=spent)
            await self._audit.append(
                conn,
                actor=identity.spiffe_id if reason == "renew" else f"{identity.spiffe_id} (bootstrap token)",
                action=f"identity.{reason}",
                subject=f"wl/{identity.wl_id}",
                before=None,
                after={"serial": record.serial, "not_after": record.not_after.isoformat(),
                       "fingerprint_sha256": record.fingerprint_sha256},
                correlation_id=correlation.get() or None,
            )
            # After the audit append took the change lock: a revocation that committed meanwhile is visible here.
            if caller_serial is not None and await is_revoked(conn, caller_serial):
                raise revoked_error()
        log.info(
            "certificate issued",
            extra={"fields": {"wl_id": identity.wl_id, "reason": reason, "serial": record.serial,
                              "not_after": record.not_after.isoformat()}},
        )
        return cert, identity

    def _response_fields(self, cert: x509.Certificate, identity: Identity) -> dict[str, Any]:
        return {
            "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "ca_certificate_pem": self._ca_pem,
            "spiffe_id": identity.spiffe_id,
            "expire_time": _timestamp(cert.not_valid_after_utc),
        }
