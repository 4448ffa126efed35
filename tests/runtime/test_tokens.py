"""JWT profile: ES256 only, one audience, subject bound to the mTLS identity, ≤ 5 minutes, known keys only."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cp_server.identity.signing import verification_keys
from xporty.cp.v1 import identity_pb2
from xwl_runtime.clock import ManualClock
from xwl_runtime.errors import PermissionDenied, XcwlError
from xwl_runtime.identity import Identity
from xwl_runtime.pki import new_private_key
from xwl_runtime.tokens import (
    AUTHORIZATION_METADATA_KEY,
    ISSUER,
    SCOPE_PLACE_ORDERS,
    TokenVerifier,
    bearer_metadata,
    issue_token,
    key_id,
    token_from_metadata,
)

IMPORTER = Identity.wl("wl-b")
EXPORTER = "wl-a"
KEY = new_private_key()
KEYS = verification_keys(KEY)


def _clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC))


def _verifier(clock: ManualClock, keys: list[identity_pb2.VerificationKey] = KEYS) -> TokenVerifier:
    return TokenVerifier(lambda: keys, EXPORTER, clock)


def _token(
    clock: ManualClock, *, key: ec.EllipticCurvePrivateKey = KEY, subject: Identity = IMPORTER,
    audience: str = EXPORTER,
) -> str:
    return issue_token(key, subject=subject, audience_wl=audience, scopes=[SCOPE_PLACE_ORDERS],
                       now=clock.now()).token


def _reason(call: Callable[[], object]) -> str:
    with pytest.raises(XcwlError) as err:
        call()
    return f"{type(err.value).__name__}:{err.value.reason}"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_valid_token_verifies_with_its_claims() -> None:
    clock = _clock()
    issued = issue_token(KEY, subject=IMPORTER, audience_wl=EXPORTER, scopes=[SCOPE_PLACE_ORDERS],
                         now=clock.now())
    claims = _verifier(clock).verify(issued.token, IMPORTER)
    assert claims.subject == IMPORTER
    assert claims.audience_wl == EXPORTER
    assert claims.scopes == {SCOPE_PLACE_ORDERS}
    assert claims.expires_at == issued.expires_at == clock.now() + dt.timedelta(minutes=5)
    assert claims.kid == KEYS[0].kid == key_id(KEY.public_key())
    header = jwt.get_unverified_header(issued.token)
    assert header["alg"] == "ES256" and header["kid"] == KEYS[0].kid
    payload = jwt.decode(issued.token, options={"verify_signature": False})
    assert payload["iss"] == ISSUER
    assert payload["aud"] == "spiffe://xporty/wl/wl-a"
    assert payload["sub"] == "spiffe://xporty/wl/wl-b"
    assert payload["scope"] == "orders:place"
    assert payload["jti"]


def test_lifetime_is_capped_at_five_minutes() -> None:
    clock = _clock()
    issued = issue_token(KEY, subject=IMPORTER, audience_wl=EXPORTER, scopes=[SCOPE_PLACE_ORDERS],
                         now=clock.now(), lifetime=dt.timedelta(hours=1))
    assert issued.expires_at - clock.now() == dt.timedelta(minutes=5)
    with pytest.raises(ValueError):
        issue_token(KEY, subject=IMPORTER, audience_wl=EXPORTER, scopes=["admin"], now=clock.now())


def test_missing_token() -> None:
    verifier = _verifier(_clock())
    assert _reason(lambda: verifier.verify(None, IMPORTER)) == "Unauthenticated:TOKEN_MISSING"
    assert _reason(lambda: verifier.verify("", IMPORTER)) == "Unauthenticated:TOKEN_MISSING"
    assert _reason(lambda: verifier.verify_metadata([], IMPORTER)) == "Unauthenticated:TOKEN_MISSING"
    assert _reason(lambda: verifier.verify_metadata([(AUTHORIZATION_METADATA_KEY, "Basic eA==")], IMPORTER)) == (
        "Unauthenticated:TOKEN_MISSING")


def test_expired_token_is_refused_after_the_leeway() -> None:
    clock = _clock()
    token = _token(clock)
    verifier = _verifier(clock)
    clock.advance(5 * 60 + 4)  # within the 5 s leeway
    verifier.verify(token, IMPORTER)
    clock.advance(1)
    assert _reason(lambda: verifier.verify(token, IMPORTER)) == "Unauthenticated:TOKEN_EXPIRED"


def test_token_for_another_audience() -> None:
    clock = _clock()
    token = _token(clock, audience="wl-c")
    assert _reason(lambda: _verifier(clock).verify(token, IMPORTER)) == "Unauthenticated:TOKEN_WRONG_AUDIENCE"


def test_subject_must_be_the_mtls_identity() -> None:
    clock = _clock()
    token = _token(clock, subject=Identity.wl("wl-c"))
    assert _reason(lambda: _verifier(clock).verify(token, IMPORTER)) == "Unauthenticated:TOKEN_SUBJECT_MISMATCH"


def test_unknown_signing_key() -> None:
    clock = _clock()
    token = _token(clock, key=new_private_key())
    assert _reason(lambda: _verifier(clock).verify(token, IMPORTER)) == "Unauthenticated:TOKEN_UNKNOWN_KEY"


def test_key_published_under_a_foreign_kid_is_not_used() -> None:
    clock = _clock()
    other = new_private_key()
    token = _token(clock, key=other)
    # The token's kid is other's, but the PEM published under that kid is KEY's: a mislabelled key is refused.
    mislabelled = [identity_pb2.VerificationKey(kid=key_id(other.public_key()), algorithm="ES256",
                                                public_key_pem=KEYS[0].public_key_pem)]
    assert _reason(lambda: _verifier(clock, mislabelled).verify(token, IMPORTER)) == (
        "Unauthenticated:TOKEN_UNKNOWN_KEY")


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    clock = _clock()
    pem = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    payload = jwt.decode(_token(clock), options={"verify_signature": False})
    # pyjwt itself refuses PEM as an HMAC secret, so the algorithm-confusion token is built by hand.
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': KEYS[0].kid})}.{_b64(payload)}"
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    assert _reason(lambda: _verifier(clock).verify(forged, IMPORTER)) == "Unauthenticated:TOKEN_INVALID"


def test_alg_none_is_refused() -> None:
    clock = _clock()
    payload = jwt.decode(_token(clock), options={"verify_signature": False})
    for alg in ("none", "None", "NONE"):
        unsigned = f"{_b64({'alg': alg, 'kid': KEYS[0].kid})}.{_b64(payload)}."
        assert _reason(lambda t=unsigned: _verifier(clock).verify(t, IMPORTER)) == "Unauthenticated:TOKEN_INVALID"


def test_tampered_payload_is_refused() -> None:
    clock = _clock()
    header, _, sig = _token(clock).split(".")
    payload = jwt.decode(_token(clock), options={"verify_signature": False})
    payload["scope"] = "orders:place admin"
    forged = f"{header}.{_b64(payload)}.{sig}"
    assert _reason(lambda: _verifier(clock).verify(forged, IMPORTER)) == "Unauthenticated:TOKEN_INVALID"


def _signed(clock: ManualClock, **changes: object) -> str:
    payload: dict[str, object] = jwt.decode(_token(clock), options={"verify_signature": False})
    payload.update(changes)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, KEY, algorithm="ES256", headers={"kid": KEYS[0].kid})


def test_claims_outside_the_profile_are_refused() -> None:
    clock = _clock()
    iat = int(clock.now().timestamp())
    verifier = _verifier(clock)
    cases = {
        "long lifetime": _signed(clock, exp=iat + 3600),
        "other issuer": _signed(clock, iss="spiffe://xporty/wl/wl-b"),
        "no jti": _signed(clock, jti=None),
        "future iat": _signed(clock, iat=iat + 120, exp=iat + 180),
        "operator subject": _signed(clock, sub="spiffe://xporty/ops/alice"),
        "garbage": "a.b.c",
    }
    for name, token in cases.items():
        assert _reason(lambda t=token: verifier.verify(t, IMPORTER)) == "Unauthenticated:TOKEN_INVALID", name


def test_scope_is_required() -> None:
    clock = _clock()
    token = _signed(clock, scope="catalog:read")
    with pytest.raises(PermissionDenied) as err:
        _verifier(clock).verify(token, IMPORTER)
    assert err.value.reason == "TOKEN_SCOPE"


def test_key_rotation_is_picked_up_and_parsed_keys_are_cached() -> None:
    clock = _clock()
    new_key = new_private_key()
    published = list(KEYS)
    calls = 0

    def keys() -> list[identity_pb2.VerificationKey]:
        nonlocal calls
        calls += 1
        return published

    verifier = TokenVerifier(keys, EXPORTER, clock)
    token = _token(clock, key=new_key)
    assert _reason(lambda: verifier.verify(token, IMPORTER)) == "Unauthenticated:TOKEN_UNKNOWN_KEY"
    published.extend(verification_keys(new_key))
    assert verifier.verify(token, IMPORTER).kid == key_id(new_key.public_key())
    assert verifier.verify(_token(clock), IMPORTER).kid == KEYS[0].kid
    assert calls == 3
    assert len(verifier._parsed) == 2  # noqa: SLF001 - the cache is the point of this assertion
    published.pop(0)  # a retired key stops verifying at once
    assert _reason(lambda: verifier.verify(_token(clock), IMPORTER)) == "Unauthenticated:TOKEN_UNKNOWN_KEY"


def test_bearer_metadata_round_trip() -> None:
    md = bearer_metadata("abc.def.ghi")
    assert md == (("authorization", "Bearer abc.def.ghi"),)
    assert token_from_metadata([("x-correlation-id", "1"), *md]) == "abc.def.ghi"
    assert token_from_metadata([("authorization", "bearer xyz")]) == "xyz"
