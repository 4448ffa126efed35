"""Short-lived JWTs that let one WL node call another WL's TraderService.

The CP issues them (``issue_token``), the exporter verifies them (``TokenVerifier``). Profile, fixed here once:

* JWS ES256 only. The verifier passes an allow-list of exactly ``["ES256"]`` to pyjwt and checks the header
  before looking a key up, so ``alg: none`` and HS256-with-the-public-key-as-secret are refused.
* header ``kid`` = first 16 hex chars of sha256(SubjectPublicKeyInfo DER) of the CP's signing key (``key_id``).
* claims: ``iss`` = ``spiffe://xporty/cp``; ``sub`` = the caller's SPIFFE id (a WL node); ``aud`` =
  ``spiffe://xporty/wl/<exporter>`` (exactly one: a list, even one that contains it, is refused); ``scope`` =
  space-separated, only ``orders:place`` today;
  ``iat``/``exp`` with ``exp - iat`` ≤ 5 minutes; ``jti`` random.
* carried in gRPC metadata ``authorization: Bearer <jwt>``.

The verifier reads time from an injected clock (pyjwt's own expiry check uses the system clock, so it is turned
off and done here) and caches parsed public keys by kid, because key parsing costs more than verifying.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from xporty.cp.v1 import identity_pb2

from .clock import Clock
from .errors import PermissionDenied, Unauthenticated
from .identity import TRUST_DOMAIN, Identity, Kind, parse_spiffe_id

log = logging.getLogger(__name__)

ALGORITHM = "ES256"
ALLOWED_ALGORITHMS = (ALGORITHM,)
ISSUER = f"spiffe://{TRUST_DOMAIN}/cp"
SCOPE_PLACE_ORDERS = "orders:place"
GRANTABLE_SCOPES = frozenset({SCOPE_PLACE_ORDERS})
MAX_LIFETIME = dt.timedelta(minutes=5)
DEFAULT_LEEWAY = dt.timedelta(seconds=5)
AUTHORIZATION_METADATA_KEY = "authorization"
BEARER_PREFIX = "Bearer "
_MAX_TOKEN_CHARS = 8192  # far above any token we issue; bounds the work an attacker can make us do

_REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "exp", "jti", "scope"]


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The ``kid`` of a public key: first 16 hex chars of sha256 over its SubjectPublicKeyInfo DER."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def audience_of(wl_id: str) -> str:
    """The ``aud`` claim for tokens that call ``wl_id``'s TraderService."""
    return Identity.wl(wl_id).spiffe_id


@dataclass(frozen=True)
class Claims:
    """The verified content of a token."""

    subject: Identity
    audience_wl: str
    scopes: frozenset[str]
    issued_at: dt.datetime
    expires_at: dt.datetime
    jti: str
    kid: str


@dataclass(frozen=True)
class IssuedToken:
    """A freshly signed token and the facts a caching client needs."""

    token: str
    expires_at: dt.datetime
    jti: str


def issue_token(
    key: ec.EllipticCurvePrivateKey,
    *,
    subject: Identity,
    audience_wl: str,
    scopes: Iterable[str],
    now: dt.datetime,
    lifetime: dt.timedelta = MAX_LIFETIME,
) -> IssuedToken:
    """Sign a token for ``subject`` to call ``audience_wl`` (lifetime clipped to ``MAX_LIFETIME``)."""
    scope_list = sorted(set(scopes))
    unknown = set(scope_list) - GRANTABLE_SCOPES
    if unknown or not scope_list:
        raise ValueError(f"scopes must be a non-empty subset of {sorted(GRANTABLE_SCOPES)}")
    if lifetime <= dt.timedelta(0):
        raise ValueError("lifetime must be positive")
    lifetime = min(lifetime, MAX_LIFETIME)
    # Whole seconds: JWT NumericDate; expires_at reported to the caller equals what the verifier will see.
    iat = int(now.timestamp())
    exp = iat + int(lifetime.total_seconds())
    jti = secrets.token_urlsafe(16)
    payload = {
        "iss": ISSUER,
        "sub": subject.spiffe_id,
        "aud": audience_of(audience_wl),
        "scope": " ".join(scope_list),
        "iat": iat,
        "exp": exp,
        "jti": jti,
    }
    import jwt  # on first use: PyJWT (≈ 1.3 MiB) stays out of a node that neither issues nor verifies tokens

    token = jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": key_id(key.public_key())})
    return IssuedToken(token=token, expires_at=dt.datetime.fromtimestamp(exp, dt.UTC), jti=jti)


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Outbound gRPC metadata carrying ``token``."""
    return ((AUTHORIZATION_METADATA_KEY, BEARER_PREFIX + token),)


def token_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The bearer token in inbound metadata, or None when absent or not a bearer credential."""
    for key, value in metadata or ():
        if key == AUTHORIZATION_METADATA_KEY and isinstance(value, str):
            if value[: len(BEARER_PREFIX)].lower() == BEARER_PREFIX.lower():
                return value[len(BEARER_PREFIX):].strip() or None
            return None
    return None


def _refuse(reason: str, message: str) -> Unauthenticated:
    return Unauthenticated(message, reason=reason)


class TokenVerifier:
    """Verifies tokens presented to one WL (the audience) against the CP's current verification keys.

    ``keys`` is called on every verification (normally it reads the node's current policy view, which carries
    the CP's keys), so a key rotation published by the CP takes effect without restarting anything.
    """

    def __init__(
        self,
        keys: Callable[[], Sequence[identity_pb2.VerificationKey]],
        audience_wl: str,
        clock: Clock,
        *,
        required_scope: str = SCOPE_PLACE_ORDERS,
        leeway: dt.timedelta = DEFAULT_LEEWAY,
    ) -> None:
        self._keys = keys
        self._audience = audience_of(audience_wl)
        self._clock = clock
        self._required_scope = required_scope
        self._leeway = leeway
        self._lock = threading.Lock()
        # kid -> (pem, parsed key); the pem is kept so a kid re-published with other bytes is parsed again.
        self._parsed: dict[str, tuple[str, ec.EllipticCurvePublicKey]] = {}

    def verify_metadata(
        self, metadata: Iterable[tuple[str, str | bytes]] | None, expected_subject: Identity
    ) -> Claims:
        """``verify`` the bearer token found in inbound gRPC metadata."""
        return self.verify(token_from_metadata(metadata), expected_subject)

    def verify(self, token: str | None, expected_subject: Identity) -> Claims:
        """The token's claims, or ``Unauthenticated``/``PermissionDenied`` with a TOKEN_* reason.

        ``expected_subject`` is the caller's mTLS identity: a token is only good in the hands it was issued to.
        """
        if not token:
            raise _refuse("TOKEN_MISSING", "a bearer token is required")
        if len(token) > _MAX_TOKEN_CHARS:
            raise _refuse("TOKEN_INVALID", "token too large")
        import jwt  # on first use, as in issue_token

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise _refuse("TOKEN_INVALID", "token is not a JWS") from err
        # Checked before any key is touched: the allow-list is the defence against alg confusion.
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise _refuse("TOKEN_INVALID", f"algorithm not allowed (only {', '.join(ALLOWED_ALGORITHMS)})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _refuse("TOKEN_INVALID", "token header has no kid")
        public_key = self._key(kid)
        if public_key is None:
            raise _refuse("TOKEN_UNKNOWN_KEY", "token signed by a key the CP does not publish")
        try:
            payload = jwt.decode(
                token,
                public_key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=self._audience,
                issuer=ISSUER,
                # Time is checked below against the injected clock; pyjwt would use the system clock.
                options={"require": _REQUIRED_CLAIMS, "verify_exp": False, "verify_iat": False,
                         "verify_nbf": False},
            )
        except jwt.InvalidAudienceError as err:
            raise _refuse("TOKEN_WRONG_AUDIENCE", f"token is not for {self._audience}") from err
        except jwt.PyJWTError as err:
            raise _refuse("TOKEN_INVALID", f"token rejected: {type(err).__name__}") from err
        return self._check_claims(payload, kid, expected_subject)

    def _check_claims(self, payload: dict[str, object], kid: str, expected_subject: Identity) -> Claims:
        # pyjwt accepts a list that merely contains our audience; a token names exactly one audience.
        if payload["aud"] != self._audience:
            raise _refuse("TOKEN_AUDIENCE", "a token must name exactly one audience, this WL")
        iat, exp = payload["iat"], payload["exp"]
        if not isinstance(iat, int | float) or not isinstance(exp, int | float):
            raise _refuse("TOKEN_INVALID", "iat/exp must be numbers")
        issued_at = dt.datetime.fromtimestamp(iat, dt.UTC)
        expires_at = dt.datetime.fromtimestamp(exp, dt.UTC)
        if expires_at - issued_at > MAX_LIFETIME or expires_at <= issued_at:
            raise _refuse("TOKEN_INVALID", "token lifetime exceeds the allowed maximum")
        now = self._clock.now()
        if now >= expires_at + self._leeway:
            raise _refuse("TOKEN_EXPIRED", "token expired")
        if issued_at > now + self._leeway:
            raise _refuse("TOKEN_INVALID", "token issued in the future")
        sub = payload["sub"]
        subject = parse_spiffe_id(sub) if isinstance(sub, str) else None
        if subject is None or subject.kind is not Kind.WL:
            raise _refuse("TOKEN_INVALID", "token subject is not a WL node")
        if subject != expected_subject:
            raise _refuse("TOKEN_SUBJECT_MISMATCH", "token was issued to another identity than the caller's")
        scope = payload["scope"]
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        if self._required_scope not in scopes:
            raise PermissionDenied(f"token lacks scope {self._required_scope}", reason="TOKEN_SCOPE")
        aud = self._audience.rsplit("/", 1)[1]
        return Claims(subject=subject, audience_wl=aud, scopes=scopes, issued_at=issued_at,
                      expires_at=expires_at, jti=str(payload["jti"]), kid=kid)

    def _key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        for published in self._keys():
            if published.kid != kid:
                continue
            if published.algorithm != ALGORITHM:
                return None
            with self._lock:
                cached = self._parsed.get(kid)
            if cached is not None and cached[0] == published.public_key_pem:
                return cached[1]
            parsed = self._parse(published)
            if parsed is not None:
                with self._lock:
                    self._parsed[kid] = (published.public_key_pem, parsed)
            return parsed
        return None

    @staticmethod
    def _parse(published: identity_pb2.VerificationKey) -> ec.EllipticCurvePublicKey | None:
        try:
            key = serialization.load_pem_public_key(published.public_key_pem.encode())
        except ValueError:
            log.warning("unparseable verification key", extra={"fields": {"kid": published.kid}})
            return None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            log.warning("verification key is not P-256", extra={"fields": {"kid": published.kid}})
            return None
        # A key published under another key's id would let one key stand in for another: refuse it.
        if key_id(key) != published.kid:
            log.warning("verification key id does not match its key", extra={"fields": {"kid": published.kid}})
            return None
        return key
