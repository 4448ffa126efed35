"""The CP's peer guard: every mTLS RPC of a revoked certificate, or of a WL node certificate the CP never
recorded, is refused before the servicer runs.

* Revoked: the serial is in the installed policy world (``World.revoked``), which a revocation updates in its
  own commit path (``ChangeRunner`` → ``PolicyHub.catch_up``) and other replicas through LISTEN/NOTIFY, so the
  refusal holds from the RPC after ``RevokeCertificate`` answers. Open streams of that certificate end too
  (``xwl_runtime.peer_guard.StreamGuard`` wakes on every installed snapshot).
* Unrecorded: a WL node certificate must be in ``identity_certificates`` (enrolled, renewed or imported); the
  first RPC of a certificate looks its fingerprint up, later ones hit an in-memory set.

Both answer UNAUTHENTICATED, reasons ``CERTIFICATE_REVOKED`` and ``CERTIFICATE_UNKNOWN``.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.identity.tables import issued_certificates
from cp_server.policy.hub import PolicyHub
from xwl_runtime.errors import Unauthenticated, Unavailable
from xwl_runtime.identity import Kind
from xwl_runtime.peer_guard import UNKNOWN_REASON, PeerCertificate, revoked_error

MAX_KNOWN = 100_000
"""Bound of the recorded-fingerprint cache (cleared when full; it refills from the store)."""

_RECORDED = sa.select(issued_certificates.c.wl_id).where(
    issued_certificates.c.fingerprint_sha256 == sa.bindparam("fingerprint")
)


class CpPeerGuard:
    """Refuses revoked and unrecorded client certificates on the CP's mTLS listener."""

    def __init__(self, hub: PolicyHub, engine: AsyncEngine) -> None:
        self._hub = hub
        self._engine = engine
        self._known: set[str] = set()

    async def check(self, peer: PeerCertificate) -> None:
        if peer.serial in self._hub.world().revoked:  # UNAVAILABLE until the world is loaded: fail closed
            raise revoked_error()
        identity = peer.identity
        if identity is None or identity.kind is not Kind.WL or peer.fingerprint_sha256 in self._known:
            return
        async with self._engine.connect() as conn:
            wl_id = (await conn.execute(_RECORDED, {"fingerprint": peer.fingerprint_sha256})).scalar_one_or_none()
        if wl_id != identity.wl_id:
            raise Unauthenticated(
                "this WL node certificate was not issued or imported by the control plane", reason=UNKNOWN_REASON,
            )
        if len(self._known) >= MAX_KNOWN:
            self._known.clear()
        self._known.add(peer.fingerprint_sha256)

    def is_revoked(self, peer: PeerCertificate) -> bool:
        try:
            return peer.serial in self._hub.world().revoked
        except Unavailable:
            return False

    def changed(self) -> asyncio.Event:
        return self._hub.next_change()
