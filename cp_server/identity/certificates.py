"""CSR checks and the record of certificates the CP issued online.

The record lets later features (signed telemetry events) check that a signature was made with a key
the CP really certified for that WL, at that time, without trusting anything in the event itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from xwl_runtime.errors import InvalidArgument

from .tables import issued_certificates

MAX_CSR_CHARS = 16 * 1024
MAX_CSR_NAMES = 16


def validate_csr(field: str, csr_pem: str) -> bytes:
    """The CSR as PEM bytes if it is one PEM PKCS#10 request for a P-256 key with a valid self-signature.

    Raises ``InvalidArgument`` naming ``field`` otherwise. Nothing in the CSR decides the identity or a name:
    the CA takes only the key from here (the names it asks for are bounded only so parsing stays cheap).
    """
    if not csr_pem:
        raise InvalidArgument.field(field, "required")
    if len(csr_pem) > MAX_CSR_CHARS:
        raise InvalidArgument.field(field, f"larger than {MAX_CSR_CHARS} characters")
    data = csr_pem.encode()
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as err:
        raise InvalidArgument.field(field, "not a PEM certificate signing request") from err
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
        raise InvalidArgument.field(field, "key must be ECDSA P-256")
    if not csr.is_signature_valid:
        raise InvalidArgument.field(field, "CSR signature does not verify")
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return data
    except ValueError as err:  # malformed extension encoding
        raise InvalidArgument.field(field, "malformed extensions") from err
    names = san.get_values_for_type(x509.DNSName) + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    if len(names) > MAX_CSR_NAMES:
        raise InvalidArgument.field(field, f"at most {MAX_CSR_NAMES} DNS/IP names")
    return data


def fingerprint(cert: x509.Certificate) -> str:
    """sha256 over the certificate's DER, lower-case hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


@dataclass(frozen=True)
class IssuedRecord:
    """One row of the issued-certificates table."""

    serial: str
    wl_id: str
    fingerprint_sha256: str
    pem: str
    not_before: dt.datetime
    not_after: dt.datetime
    issued_at: dt.datetime
    reason: str
    token_sha256: str | None = None
    origin_at: dt.datetime | None = None
    """Start of the renewal chain (the enrollment); every certificate of the chain ends by origin + max age."""
    superseded_by: str | None = None
    """Serial of the renewal that replaced this certificate."""


async def record_issued(
    conn: AsyncConnection, *, wl_id: str, cert: x509.Certificate, reason: str, now: dt.datetime,
    token_sha256: str | None = None, origin_at: dt.datetime | None = None,
) -> IssuedRecord:
    """Insert the record of ``cert`` in the caller's transaction (``origin_at`` defaults to ``now``)."""
    record = IssuedRecord(
        serial=serial_hex(cert),
        wl_id=wl_id,
        fingerprint_sha256=fingerprint(cert),
        pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        issued_at=now,
        reason=reason,
        token_sha256=token_sha256,
        origin_at=origin_at or now,
    )
    await conn.execute(issued_certificates.insert().values(**record.__dict__))
    return record


async def record_by_fingerprint_in(conn: AsyncConnection, fingerprint_sha256: str) -> IssuedRecord | None:
    """The issued certificate with this DER sha256, read in the caller's transaction."""
    t = issued_certificates
    row = (await conn.execute(sa.select(t).where(t.c.fingerprint_sha256 == fingerprint_sha256))).mappings().first()
    return IssuedRecord(**dict(row)) if row is not None else None


async def supersede(conn: AsyncConnection, *, fingerprint_sha256: str, by_serial: str) -> bool:
    """Mark a certificate as replaced by ``by_serial``; False if it already was (or is unknown).

    A conditional UPDATE, so two renewals racing from the same certificate cannot both win: on PostgreSQL the
    second waits for the row lock and then sees ``superseded_by`` set; on SQLite writers are serialized.
    """
    t = issued_certificates
    result = await conn.execute(
        t.update().where(t.c.fingerprint_sha256 == fingerprint_sha256, t.c.superseded_by.is_(None))
        .values(superseded_by=by_serial)
    )
    return bool(result.rowcount == 1)


async def enrollment_replay(
    engine: AsyncEngine, *, token_sha256: str, csr_pem: bytes, now: dt.datetime, window: dt.timedelta
) -> x509.Certificate | None:
    """The certificate an earlier enrollment with this token issued for the same public key, if recent.

    A node whose Enroll answer was lost (the CP committed, the response never arrived) retries with the same
    CSR; only the holder of the certified private key can sign that CSR, so handing the certificate out again
    gives nothing to anyone else, and the token still cannot certify any other key.
    """
    t = issued_certificates
    async with engine.connect() as conn:
        row = (await conn.execute(
            sa.select(t.c.pem).where(t.c.token_sha256 == token_sha256, t.c.reason == "enroll",
                                     t.c.issued_at > now - window, t.c.not_after > now,
                                     t.c.superseded_by.is_(None))
        )).first()
    if row is None:
        return None
    cert = x509.load_pem_x509_certificate(row.pem.encode())
    requested = x509.load_pem_x509_csr(csr_pem).public_key()
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert if cert.public_key().public_bytes(*spki) == requested.public_bytes(*spki) else None


async def certificates_of(
    engine: AsyncEngine, wl_id: str, *, valid_at: dt.datetime | None = None
) -> list[IssuedRecord]:
    """Certificates issued to ``wl_id`` (only those valid at ``valid_at`` when given), oldest first."""
    t = issued_certificates
    query = sa.select(t).where(t.c.wl_id == wl_id).order_by(t.c.issued_at, t.c.serial)
    if valid_at is not None:
        query = query.where(t.c.not_before <= valid_at, t.c.not_after > valid_at)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [IssuedRecord(**dict(row)) for row in rows]


async def certificate_by_fingerprint(engine: AsyncEngine, fingerprint_sha256: str) -> IssuedRecord | None:
    """The issued certificate with this DER sha256 (as ``xwl_runtime.event_signing.certificate_sha256`` names it)."""
    t = issued_certificates
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(t).where(t.c.fingerprint_sha256 == fingerprint_sha256))).mappings().first()
    return IssuedRecord(**dict(row)) if row is not None else None
