"""Webhook signatures, Stripe-style: ``X-Xcwl-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>``.

The timestamp is inside the MAC, so a receiver that refuses timestamps outside its tolerance window refuses a
replayed delivery, and any change to the body or the timestamp breaks the MAC. ``verify`` is what a receiver runs
(the tests' receiver uses it); several ``v1`` entries are accepted so a secret can be rolled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cp_server.settings.webhooks import DEFAULT_TOLERANCE_S as DEFAULT_TOLERANCE_S

HEADER = "X-Xcwl-Signature"


class SignatureError(ValueError):
    """The header is missing, malformed, outside the tolerance window or does not match the body."""


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(header: str | None, body: bytes, secret: str, *, now: float, tolerance_s: float = DEFAULT_TOLERANCE_S
           ) -> int:
    """Check a delivery; returns its timestamp, raises ``SignatureError`` otherwise."""
    if not header:
        raise SignatureError("no signature")
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
    if timestamp is None or not macs:
        raise SignatureError("malformed signature header")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("timestamp outside the tolerance window")
    expected = _mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, m) for m in macs):
        raise SignatureError("signature does not match")
    return timestamp
