"""Who signed an event, and whether to believe it: signer lookup and per-event checks before storage.

The signer is the certificate named by ``signer_certificate_sha256``: one the CP issued online (CP-identity's
``identity_certificates`` table), or the caller's own mTLS certificate when its fingerprint matches (certificates
issued offline with ``xcwl pki issue`` are never in the table). The certificate's WL (its SPIFFE URI SAN) must be
the event's ``wl_id``, which must be the caller's WL: a node publishes only its own events.

A certificate that expired since signing is still accepted: events queued while the CP was down arrive after the
node renewed, and the signature was made while the key was certified. Signatures are checked off the event loop,
large batches in worker processes (``verify_pool``); decoding and the checks below stay here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.identity.tables import issued_certificates
from cp_server.risk.engine import Candidate, Refusal
from cp_server.risk.ledger import GRACE_EVENT_PREFIX, KIND_OF, NODE_KINDS, ORDER_KINDS, EventKind
from xporty.cp.v1 import telemetry_pb2
from xwl_runtime.event_signing import EventSignatureError, certificate_public_key, certificate_sha256, decode
from xwl_runtime.identity import Kind, identity_of_pem

from .verify_pool import Check, SignatureVerifier, verify_chunk

MAX_ID = 128
MAX_WL = 63
MAX_CURRENCY = 16
MAX_AMOUNT = 96
_KNOWN_KINDS = {k.value for k in NODE_KINDS}


@dataclass(frozen=True)
class Signer:
    """A certificate that may sign events: its WL and public key."""

    wl_id: str
    public_key: ec.EllipticCurvePublicKey
    public_der: bytes = b""
    """DER SubjectPublicKeyInfo of ``public_key`` (what the verification workers load)."""

    @classmethod
    def of(cls, wl_id: str, public_key: ec.EllipticCurvePublicKey) -> Signer:
        """A signer with its DER key filled in."""
        der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(wl_id, public_key, der)


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
            signer = Signer.of(ident.wl_id, certificate_public_key(pem)) if ident and ident.kind is Kind.WL else None
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
                signer = Signer.of(row.wl_id, certificate_public_key(row.pem.encode()))
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
    if event.event_id.startswith(GRACE_EVENT_PREFIX):
        return "RESERVED_EVENT_ID"  # the CP's own events (grace-period markers) use these ids
    kind = KIND_OF[event.kind]
    if kind in ORDER_KINDS and not event.order_id:
        return "MISSING_ORDER_ID"
    if kind in ORDER_KINDS and not (event.exporter_wl and event.importer_wl):
        return "MISSING_DIRECTION"
    if kind is EventKind.ENFORCEMENT_ACK and not event.signal_id:
        return "MISSING_SIGNAL_ID"
    return None


def _split(
    events: Sequence[telemetry_pb2.SignedEvent], signers: dict[str, Signer]
) -> tuple[list[Check], list[tuple[int, Signer]], dict[int, Refusal]]:
    """Signature checks to run, (index, signer) of each, and the events refused before any check."""
    checks: list[Check] = []
    pending: list[tuple[int, Signer]] = []
    early: dict[int, Refusal] = {}
    for index, signed in enumerate(events):
        if not signed.signature:
            early[index] = Refusal(index, _event_id_of(signed), "UNSIGNED")
            continue
        signer = signers.get(signed.signer_certificate_sha256)
        if signer is None:
            early[index] = Refusal(index, _event_id_of(signed), "UNKNOWN_SIGNER")
            continue
        checks.append((signer.public_der, signed.payload, signed.signature))
        pending.append((index, signer))
    return checks, pending, early


def _judge(
    events: Sequence[telemetry_pb2.SignedEvent], pending: list[tuple[int, Signer]], valid: bytes,
    early: dict[int, Refusal], caller_wl: str,
) -> tuple[list[Candidate], list[Refusal]]:
    """Decode and check the events whose signature verified; everything in request order."""
    results: dict[int, Candidate | Refusal] = dict(early)
    for (index, signer), ok in zip(pending, valid, strict=True):
        signed = events[index]
        if not ok:
            results[index] = Refusal(index, _event_id_of(signed), "BAD_SIGNATURE")
            continue
        try:
            event = decode(signed)
        except EventSignatureError as err:
            results[index] = Refusal(index, "", err.reason)
            continue
        reason = _shape(event)
        if reason is None and event.wl_id != signer.wl_id:
            reason = "SIGNER_MISMATCH"
        if reason is None and event.wl_id != caller_wl:
            reason = "CALLER_MISMATCH"
        results[index] = (Refusal(index, event.event_id[:MAX_ID], reason) if reason is not None
                          else Candidate(index, event, signed))
    accepted: list[Candidate] = []
    refused: list[Refusal] = []
    for index in sorted(results):
        item = results[index]
        if isinstance(item, Candidate):
            accepted.append(item)
        else:
            refused.append(item)
    return accepted, refused


def check_batch(
    events: Sequence[telemetry_pb2.SignedEvent], signers: dict[str, Signer], caller_wl: str
) -> tuple[list[Candidate], list[Refusal]]:
    """Verify every event of a batch inline (CPU only). Keeps the request order."""
    checks, pending, early = _split(events, signers)
    return _judge(events, pending, verify_chunk(checks), early, caller_wl)


async def check_batch_async(
    events: Sequence[telemetry_pb2.SignedEvent], signers: dict[str, Signer], caller_wl: str,
    verifier: SignatureVerifier,
) -> tuple[list[Candidate], list[Refusal]]:
    """``check_batch`` with the signature checks off the event loop (worker processes for large batches)."""
    checks, pending, early = _split(events, signers)
    valid = await verifier.verify(checks)
    return _judge(events, pending, valid, early, caller_wl)
