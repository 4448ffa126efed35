"""The peer-certificate hook of the server pipeline: refuse revoked (or, on the CP, unrecorded) certificates.

The pipeline calls ``PeerGuard.check`` with the caller's verified certificate on every RPC, after the identity
is known and before the servicer runs, and runs server streams through ``StreamGuard.guard`` so that an open stream of
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
    pem = next(iter(auth.get("x509_pem_cert") or ()), None) if auth else None
    return certificate_of_pem(pem) if pem is not None else None


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


class StreamGuard:
    """Ends the open streams of a certificate as soon as a new snapshot revokes it.

    One watcher task per guard (started with the first open stream, ended after the last) waits for the next
    snapshot and checks the open streams' serials against it, resolving the revoked ones' futures. A stream races
    each next item against its own future: an open stream costs a dictionary entry and one future, and a snapshot
    that does not revoke it does not wake it.
    """

    def __init__(self, guard: PeerGuard) -> None:
        self._guard = guard
        self._streams: dict[int, tuple[PeerCertificate, asyncio.Future[None]]] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def guard(self, peer: PeerCertificate, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """``items``, ended with ``CERTIFICATE_REVOKED`` when ``peer`` is revoked, even while the stream waits."""
        revoked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = id(revoked)
        self._streams[key] = (peer, revoked)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="stream-guard")
        pending: asyncio.Future[T] | None = None
        try:
            while True:
                if revoked.done() or self._guard.is_revoked(peer):
                    raise revoked_error()
                pending = asyncio.ensure_future(items.__anext__())
                await asyncio.wait((pending, revoked), return_when=asyncio.FIRST_COMPLETED)
                if not pending.done():
                    raise revoked_error()
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    return
                finally:
                    pending = None
                yield item
        finally:
            self._streams.pop(key, None)
            if not self._streams and self._watcher is not None:
                self._watcher.cancel()  # it waits for the next snapshot; with no stream left there is nothing to end
                self._watcher = None
            if pending is not None and not pending.done():
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _watch(self) -> None:
        while self._streams:
            changed = self._guard.changed()  # taken before the check: a snapshot installed meanwhile sets it
            for peer, revoked in list(self._streams.values()):
                if not revoked.done() and self._guard.is_revoked(peer):
                    revoked.set_result(None)
            await changed.wait()
