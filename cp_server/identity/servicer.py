"""IdentityService: enrollment, certificate renewal, short-lived JWTs and the JWKS.

Who may call what (see ``component.AUTHZ``): Enroll only without a client certificate (the enrollment
listener); RenewCertificate, IssueToken and IssueTokens only WL nodes, whose identity comes from their mTLS
certificate and never from the request; GetJwks any authenticated caller. IssueTokens signs one single-audience
token per peer the caller may call now (``WlRegistry.callable_peers``), none for a peer the policy blocks.

Enrollment order, chosen so that a typo does not burn a token: the CSR is validated first (INVALID_ARGUMENT,
token untouched); then one transaction consumes the token, signs, records the certificate and writes the audit
row. If anything in that transaction fails the token stays unused, so a token is spent exactly when a
certificate was issued for it. A node that lost the answer retries with the same CSR and gets the same
certificate back (within ``ENROLL_REPLAY_WINDOW``); the spent token certifies no other key.

Names: the CA ignores every name in a CSR and certifies exactly the SPIFFE URI, the identity's pinned name and the
DNS names the registry holds for that WL.

Bounded identity: an enrollment starts a chain; a renewal inherits the chain's origin from the certificate the
caller presented (looked up by its DER fingerprint), never ends after ``origin + max_identity_age``, and is
refused (FAILED_PRECONDITION ``IDENTITY_MAX_AGE``) once less than ``MIN_RENEWED_LIFETIME`` would remain. A renewal
supersedes the presented certificate in the same transaction; renewing from a superseded certificate is refused
(PERMISSION_DENIED ``CERTIFICATE_SUPERSEDED``), so a stolen copy of a key cannot fork the chain.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.store.trust_records import is_revoked
from xporty.cp.v1 import identity_pb2
from xporty.cp.v1 import identity_service_pb2 as pb
from xporty.cp.v1 import identity_service_pb2_grpc as pb_grpc
from xwl_runtime import correlation
from xwl_runtime.clock import Clock
from xwl_runtime.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated
from xwl_runtime.identity import Identity, Kind, identity_of_certificate
from xwl_runtime.peer_guard import revoked_error
from xwl_runtime.pipeline import caller
from xwl_runtime.pki import CertificateAuthority
from xwl_runtime.tokens import GRANTABLE_SCOPES, MAX_LIFETIME, SCOPE_PLACE_ORDERS, issue_token

from .bootstrap import BootstrapTokens, token_hash
from .certificates import (
    IssuedRecord,
    enrollment_replay,
    fingerprint,
    record_by_fingerprint_in,
    record_issued,
    serial_hex,
    supersede,
    validate_csr,
)
from .registry import RegistryLookup
from .signing import verification_keys

if TYPE_CHECKING:
    from cp_server.audit.log import AuditLog

log = logging.getLogger(__name__)

ENROLL_REPLAY_WINDOW = dt.timedelta(hours=1)
"""How long a node may repeat an enrollment whose answer it lost (same token, same key)."""
DEFAULT_MAX_IDENTITY_AGE = dt.timedelta(days=30)
MIN_RENEWED_LIFETIME = dt.timedelta(minutes=5)
"""A renewal that could only be valid for less than this is refused: the node must enroll again."""
MAX_AGE_REASON = "IDENTITY_MAX_AGE"
SUPERSEDED_REASON = "CERTIFICATE_SUPERSEDED"


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
        registry: RegistryLookup,
        audit: AuditLog,
        clock: Clock,
        jwt_key: ec.EllipticCurvePrivateKey,
        cert_lifetime: dt.timedelta,
        token_lifetime: dt.timedelta,
        signing_key: Callable[[], ec.EllipticCurvePrivateKey] | None = None,
        published_keys: Callable[[], Sequence[identity_pb2.VerificationKey]] | None = None,
        max_identity_age: dt.timedelta = DEFAULT_MAX_IDENTITY_AGE,
    ) -> None:
        """``signing_key``/``published_keys`` follow key rotation (``cp_server.trust.token_keys``); without them
        the CP signs with ``jwt_key`` and publishes only it."""
        if token_lifetime > MAX_LIFETIME:
            raise ValueError(f"token lifetime must be at most {MAX_LIFETIME}")
        if max_identity_age < 2 * MIN_RENEWED_LIFETIME:
            raise ValueError(f"max identity age must be at least {2 * MIN_RENEWED_LIFETIME}")
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
        self._max_identity_age = max_identity_age

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
        csr = validate_csr("csr_pem", request.csr_pem)
        presented = _presented_certificate(context)
        if presented is None or identity_of_certificate(presented) != identity:
            raise PermissionDenied("renewal needs the caller's current certificate", reason="CERTIFICATE_REQUIRED")
        cert, _ = await self._issue(csr, reason="renew", identity=identity, presented=presented)
        return pb.RenewCertificateResponse(**self._response_fields(cert, identity))

    async def IssueToken(
        self,
        request: pb.IssueTokenRequest,
        context: grpc.aio.ServicerContext[pb.IssueTokenRequest, pb.IssueTokenResponse],
    ) -> pb.IssueTokenResponse:
        subject = _token_subject()
        audience = request.audience_wl
        try:
            Identity.wl(audience)
        except ValueError as err:
            raise InvalidArgument.field("audience_wl", str(err)) from err
        if audience == subject.wl_id:
            raise InvalidArgument.field("audience_wl", "must be another WL than the caller")
        scopes = await self._grant(subject, request.scopes)
        if not await self._registry.is_registered(audience):
            raise InvalidArgument.field("audience_wl", "not a registered WL")
        issued = issue_token(
            self._signing_key(), subject=subject, audience_wl=audience, scopes=scopes, now=self._clock.now(),
            lifetime=self._token_lifetime,
        )
        log.info("token issued", extra={"fields": {"sub": subject.spiffe_id, "aud": audience, "jti": issued.jti}})
        return pb.IssueTokenResponse(token=issued.token, expire_time=_timestamp(issued.expires_at))

    async def IssueTokens(
        self,
        request: pb.IssueTokensRequest,
        context: grpc.aio.ServicerContext[pb.IssueTokensRequest, pb.IssueTokensResponse],
    ) -> pb.IssueTokensResponse:
        subject = _token_subject()
        scopes = await self._grant(subject, request.scopes)
        peers = [p for p in await self._registry.callable_peers(subject.wl_id) if p != subject.wl_id]
        key, now = self._signing_key(), self._clock.now()
        tokens = []
        for audience in peers:  # one signature per audience: a token is never valid at two exporters
            issued = issue_token(key, subject=subject, audience_wl=audience, scopes=scopes, now=now,
                                 lifetime=self._token_lifetime)
            tokens.append(identity_pb2.PeerToken(audience_wl=audience, token=issued.token,
                                                 expire_time=_timestamp(issued.expires_at)))
        log.info("tokens issued", extra={"fields": {"sub": subject.spiffe_id, "count": len(tokens)}})
        return pb.IssueTokensResponse(tokens=tokens)

    async def _grant(self, subject: Identity, requested: Sequence[str]) -> set[str]:
        """The scopes granted to a WL node's tokens (refusals: a scope not grantable, the caller's WL not
        registered)."""
        scopes = set(requested) or {SCOPE_PLACE_ORDERS}
        refused = sorted(scopes - GRANTABLE_SCOPES)
        if refused:
            raise PermissionDenied(
                f"scopes not grantable: {', '.join(refused)}", reason="SCOPE_NOT_ALLOWED",
                metadata={"scopes": " ".join(refused)},
            )
        if not await self._registry.is_registered(subject.wl_id):
            raise PermissionDenied("the caller's WL is not registered", reason="WL_NOT_REGISTERED")
        return scopes

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
        presented: x509.Certificate | None = None,
    ) -> tuple[x509.Certificate, Identity]:
        """Consume the token (enrollment) or supersede the presented certificate (renewal), sign, record and
        audit in one transaction."""
        now = self._clock.now()
        async with self._engine.begin() as conn:
            previous: IssuedRecord | None = None
            if identity is None:
                identity = Identity.wl(await self._bootstrap.consume_in(conn, token))
                spent: str | None = token_hash(token)
                origin = now
            else:
                spent = None
                if presented is None:
                    raise PermissionDenied("renewal needs the caller's current certificate",
                                           reason="CERTIFICATE_REQUIRED")
                previous = await self._chain_link(conn, identity, presented)
                origin = previous.origin_at or previous.not_before
            ends_by = origin + self._max_identity_age
            if ends_by - now < MIN_RENEWED_LIFETIME:
                log.warning("renewal past the maximum identity age refused",
                            extra={"fields": {"wl_id": identity.wl_id, "origin": origin.isoformat()}})
                raise FailedPrecondition(
                    f"this identity reached its maximum age ({self._max_identity_age}); enroll again with a new "
                    "bootstrap token", reason=MAX_AGE_REASON,
                    metadata={"origin_time": origin.isoformat(), "max_age_seconds": str(
                        int(self._max_identity_age.total_seconds()))},
                )
            names = await self._registry.dns_names_in(conn, identity.wl_id)
            try:
                cert = self._ca.sign_csr(csr_pem, identity, dns_names=names, lifetime=self._cert_lifetime, now=now,
                                         not_after=ends_by)
            except ValueError as err:  # validated above; kept so a CA refusal is never an INTERNAL
                raise InvalidArgument.field("csr_pem", str(err)) from err
            record = await record_issued(conn, wl_id=identity.wl_id, cert=cert, reason=reason, now=now,
                                         token_sha256=spent, origin_at=origin)
            if previous is not None and not await supersede(
                conn, fingerprint_sha256=previous.fingerprint_sha256, by_serial=record.serial
            ):
                raise _superseded()  # a concurrent renewal from the same certificate won
            await self._audit.append(
                conn,
                actor=identity.spiffe_id if reason == "renew" else f"{identity.spiffe_id} (bootstrap token)",
                action=f"identity.{reason}",
                subject=f"wl/{identity.wl_id}",
                before={"serial": previous.serial} if previous is not None else None,
                after={"serial": record.serial, "not_after": record.not_after.isoformat(),
                       "fingerprint_sha256": record.fingerprint_sha256, "origin": origin.isoformat(),
                       "dns_names": list(names)},
                correlation_id=correlation.get() or None,
            )
            # After the audit append took the change lock: a revocation that committed meanwhile is visible here.
            if presented is not None and await is_revoked(conn, serial_hex(presented)):
                raise revoked_error()
        log.info(
            "certificate issued",
            extra={"fields": {"wl_id": identity.wl_id, "reason": reason, "serial": record.serial,
                              "not_after": record.not_after.isoformat()}},
        )
        return cert, identity

    async def _chain_link(
        self, conn: AsyncConnection, identity: Identity, presented: x509.Certificate
    ) -> IssuedRecord:
        """The record of the certificate a renewing caller presented; refused when already superseded.

        A certificate our CA issued offline (``xcwl pki issue``) has no record yet: it is recorded here, its
        chain starting at its not_before, so it too renews only once and only up to the maximum age.
        """
        found = await record_by_fingerprint_in(conn, fingerprint(presented))
        if found is None:
            start = presented.not_valid_before_utc  # the best "issued at" known for an offline certificate
            try:
                found = await record_issued(conn, wl_id=identity.wl_id, cert=presented, reason="offline", now=start,
                                            origin_at=start)
            except sa.exc.IntegrityError as err:
                # A concurrent renewal from the same offline certificate recorded it first (and renewed it).
                raise _superseded() from err
        if found.wl_id != identity.wl_id:  # same certificate, same identity: cannot happen unless tampered
            raise PermissionDenied("the presented certificate is recorded for another WL",
                                   reason="CERTIFICATE_MISMATCH")
        if found.superseded_by is not None:
            log.warning("renewal from a superseded certificate refused",
                        extra={"fields": {"wl_id": identity.wl_id, "serial": found.serial,
                                          "superseded_by": found.superseded_by}})
            raise _superseded()
        return found

    def _response_fields(self, cert: x509.Certificate, identity: Identity) -> dict[str, Any]:
        return {
            "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "ca_certificate_pem": self._ca_pem,
            "spiffe_id": identity.spiffe_id,
            "expire_time": _timestamp(cert.not_valid_after_utc),
        }


def _token_subject() -> Identity:
    """The caller of a token RPC: WL nodes only (also guaranteed by the authz table; kept next to the use)."""
    subject = caller()
    if subject.kind is not Kind.WL:
        raise PermissionDenied("only WL nodes obtain peer tokens", reason="IDENTITY_NOT_ALLOWED")
    return subject


def _superseded() -> PermissionDenied:
    return PermissionDenied(
        "this certificate was already renewed; only its successor may renew (a copy of an old key gets nothing)",
        reason=SUPERSEDED_REASON,
    )


def _presented_certificate(context: grpc.aio.ServicerContext[Any, Any]) -> x509.Certificate | None:
    """The client certificate of this call as verified by the TLS handshake (None without one)."""
    auth = context.auth_context()
    pems = list(auth.get("x509_pem_cert") or ()) if auth else []
    return x509.load_pem_x509_certificate(pems[0]) if pems else None
