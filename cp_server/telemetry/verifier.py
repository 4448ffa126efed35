"""Who signed an event, and whether to believe it: signer lookup and per-event checks before storage.

The signer is the certificate named by ``signer_certificate_sha256``: one the CP issued online (CP-identity's
``identity_certificates`` table), or the caller's own mTLS certificate when its fingerprint matches (certificates
issued offline with ``xcwl pki issue`` are never in the table). The certificate's WL (its SPIFFE URI SAN) must be
the event's ``wl_id``, which must be the caller's WL: a node publishes only its own events.

A certificate that expired since signing is still accepted: events queued while the CP was down arrive after the
node renewed, and the signature was made while the key was certified. Signatures are checked in a worker thread
(OpenSSL releases the GIL), so a large batch does not stall the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncEngine
from xporty.cp.v1 import telemetry_pb2

from cp_server.identity.tables import issued_certificates
from cp_server.risk.engine import Candidate, Refusal
from cp_server.risk.ledger import ORDER_KINDS, EventKind
from xwl_runtime.event_signing import EventSignatureError, certificate_public_key, certificate_sha256, decode, verify
from xwl_runtime.identity import Kind, identity_of_pem

MAX_ID = 128
MAX_WL = 63
MAX_CURRENCY = 16
MAX_AMOUNT = 96
_KNOWN_KINDS = {k.value for k in EventKind}


@dataclass(frozen=True)
class Signer:
    """A certificate that may sign events: its WL and public key."""

    wl_id: str
    public_key: ec.EllipticCurvePublicKey


class SignerDirectory:
    """Fingerprint → signer, from the issued-certificates table and the certificates callers presented; cached
    (a fingerprint names one immutable certificate, so a positive entry never goes stale; unknown ones are not
    cached)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._cache: dict[str, Signer] = {}
        self._by_pem: dict[bytes, tuple[str, Signer | None]] = {}

    def _from_pem(self, pem: bytes) -> tuple[str, Signer | None]:
        known = self._by_pem.get(pem)
        if known is None:
            ident = identity_of_pem(pem)
            signer = Signer(ident.wl_id, certificate_public_key(pem)) if ident and ident.kind is Kind.WL else None
            known = (certificate_sha256(pem), signer)
            if len(self._by_pem) > 10_000:
                self._by_pem.clear()
            self._by_pem[pem] = known
        return known

    async def resolve(self, fingerprints: set[str], caller_pem: bytes | None) -> dict[str, Signer]:
        """The signers for ``fingerprints`` that are known (unknown ones are absent)."""
        found = {fp: self._cache[fp] for fp in fingerprints if fp in self._cache}
        if caller_pem is not None:
            fp, signer = self._from_pem(caller_pem)
            if signer is not None:
                # The caller's certificate passed the mTLS handshake: a CA-issued key of its WL, so it may sign.
                self._cache[fp] = signer
                if fp in fingerprints:
                    found[fp] = signer
        missing = sorted(fingerprints - found.keys())
        if missing:
            c = issued_certificates.c
            async with self._engine.connect() as conn:
                rows = (await conn.execute(
                    sa.select(c.fingerprint_sha256, c.wl_id, c.pem).where(c.fingerprint_sha256.in_(missing))
                )).all()
            for row in rows:
                signer = Signer(row.wl_id, certificate_public_key(row.pem.encode()))
                self._cache[row.fingerprint_sha256] = signer
                found[row.fingerprint_sha256] = signer
        return found


def _event_id_of(signed: telemetry_pb2.SignedEvent) -> str:
    try:
        return decode(signed).event_id[:MAX_ID]
    except EventSignatureError:
        return ""


def _shape(event: telemetry_pb2.LedgerEvent) -> str | None:
    """The reason an event is malformed, or None."""
    if not event.event_id:
        return "MISSING_EVENT_ID"
    if not event.correlation_id:
        return "MISSING_CORRELATION_ID"
    if event.kind == telemetry_pb2.LEDGER_EVENT_KIND_UNSPECIFIED:
        return "MISSING_KIND"
    if event.kind not in _KNOWN_KINDS:
        return "UNKNOWN_KIND"
    if (len(event.event_id) > MAX_ID or len(event.correlation_id) > MAX_ID or len(event.order_id) > MAX_ID
            or len(event.signal_id) > MAX_ID or len(event.exporter_wl) > MAX_WL or len(event.importer_wl) > MAX_WL
            or len(event.amount.currency) > MAX_CURRENCY or len(event.amount.amount) > MAX_AMOUNT):
        return "FIELD_TOO_LONG"
    kind = EventKind(event.kind)
    if kind in ORDER_KINDS and not event.order_id:
        return "MISSING_ORDER_ID"
    if kind in ORDER_KINDS and not (event.exporter_wl and event.importer_wl):
        return "MISSING_DIRECTION"
    if kind is EventKind.ENFORCEMENT_ACK and not event.signal_id:
        return "MISSING_SIGNAL_ID"
    return None


def check_batch(
    events: Sequence[telemetry_pb2.SignedEvent], signers: dict[str, Signer], caller_wl: str
) -> tuple[list[Candidate], list[Refusal]]:
    """Verify every event of a batch (CPU only; run it in a thread). Keeps the request order."""
    accepted: list[Candidate] = []
    refused: list[Refusal] = []
    for index, signed in enumerate(events):
        signer = signers.get(signed.signer_certificate_sha256)
        if not signed.signature:
            refused.append(Refusal(index, _event_id_of(signed), "UNSIGNED"))
            continue
        if signer is None:
            refused.append(Refusal(index, _event_id_of(signed), "UNKNOWN_SIGNER"))
            continue
        try:
            event = verify(signed, signer.public_key)
        except EventSignatureError as err:
            refused.append(Refusal(index, _event_id_of(signed), err.reason))
            continue
        reason = _shape(event)
        if reason is None and event.wl_id != signer.wl_id:
            reason = "SIGNER_MISMATCH"
        if reason is None and event.wl_id != caller_wl:
            reason = "CALLER_MISMATCH"
        if reason is not None:
            refused.append(Refusal(index, event.event_id[:MAX_ID], reason))
        else:
            accepted.append(Candidate(index, event, signed))
    return accepted, refused


async def check_batch_async(
    events: Sequence[telemetry_pb2.SignedEvent], signers: dict[str, Signer], caller_wl: str
) -> tuple[list[Candidate], list[Refusal]]:
    """``check_batch`` off the event loop for batches big enough to be worth the thread hop."""
    if len(events) < 8:
        return check_batch(events, signers, caller_wl)
    return await asyncio.to_thread(check_batch, events, signers, caller_wl)
