"""The peer-certificate hook of the server pipeline: refuse revoked (or, on the CP, unrecorded) certificates.

The pipeline calls ``PeerGuard.check`` with the caller's verified certificate on every RPC, after the identity
is known and before the servicer runs, and runs server streams through ``guard_stream`` so that an open stream of
a certificate revoked meanwhile ends with the same refusal. The guard decides from an in-memory snapshot (the CP's
policy world, the node's applied view); ``changed()`` is an event set when that snapshot is replaced.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .errors import Unauthenticated
from .identity import Identity, identity_of_certificate

T = TypeVar("T")

REVOKED_REASON = "CERTIFICATE_REVOKED"
UNKNOWN_REASON = "CERTIFICATE_UNKNOWN"


@dataclass(frozen=True)
class PeerCertificate:
    """The facts of a verified client certificate a guard decides on."""

    identity: Identity | None
    serial: str
    """Lower-case hex, as the CP records it."""
    fingerprint_sha256: str


@functools.lru_cache(maxsize=4096)
def certificate_of_pem(pem: bytes) -> PeerCertificate:
    """Cached: serial, fingerprint and identity of a PEM certificate from gRPC's auth context."""
    cert = x509.load_pem_x509_certificate(pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    return PeerCertificate(identity_of_certificate(cert), format(cert.serial_number, "x"),
                           hashlib.sha256(der).hexdigest())


def peer_certificate(context: grpc.aio.ServicerContext[Any, Any]) -> PeerCertificate | None:
    """The caller's verified client certificate, None without one (enrollment listener, --insecure-dev)."""
    auth = context.auth_context()
    pems = list(auth.get("x509_pem_cert") or ()) if auth else None
    return certificate_of_pem(pems[0]) if pems else None


def revoked_error() -> Unauthenticated:
    return Unauthenticated("the client certificate has been revoked", reason=REVOKED_REASON)


class PeerGuard(Protocol):
    """What the pipeline needs from a certificate policy."""

    async def check(self, peer: PeerCertificate) -> None:
        """Raise an ``XcwlError`` if ``peer`` may not call at all."""

    def is_revoked(self, peer: PeerCertificate) -> bool:
        """Whether ``peer`` is revoked in the current snapshot (no I/O)."""

    def changed(self) -> asyncio.Event:
        """An event set when the snapshot is next replaced."""


async def guard_stream(guard: PeerGuard, peer: PeerCertificate, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """``items``, ended with ``CERTIFICATE_REVOKED`` as soon as ``peer`` is revoked, even while the stream waits."""
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            if guard.is_revoked(peer):
                raise revoked_error()
            if pending is None:
                pending = asyncio.ensure_future(items.__anext__())
            changed = asyncio.ensure_future(guard.changed().wait())
            racing: set[asyncio.Future[Any]] = {pending, changed}
            try:
                await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
            if not pending.done():
                continue  # the snapshot changed: re-check before waiting again
            try:
                item = pending.result()
            except StopAsyncIteration:
                pending = None
                return
            pending = None
            yield item
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
