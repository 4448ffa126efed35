"""Recording WL node certificates issued offline (``xcwl pki issue --wl``, made with the CA key outside the CP).

The CP refuses a WL node certificate it never recorded (``guard``), so a certificate minted with a copy of the CA
key cannot be used against the CP unnoticed. An operator imports it: the certificate must be signed by this CA,
name one WL node identity and not be expired; it is recorded in ``identity_certificates`` (reason ``import``) and
audited in one transaction. Importing a recorded certificate again changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.audit.log import AuditLog
from cp_server.identity.certificates import record_issued, serial_hex
from cp_server.identity.tables import issued_certificates
from xwl_runtime import correlation
from xwl_runtime.errors import InvalidArgument
from xwl_runtime.identity import Kind, identity_of_certificate

MAX_CERT_CHARS = 16 * 1024


@dataclass(frozen=True)
class Imported:
    """The outcome of an import."""

    serial: str
    wl_id: str
    not_after: dt.datetime
    imported: bool


def _parse(pem: str, ca_cert: x509.Certificate, now: dt.datetime) -> tuple[x509.Certificate, str]:
    field = "certificate_pem"
    if not pem:
        raise InvalidArgument.field(field, "required")
    if len(pem) > MAX_CERT_CHARS:
        raise InvalidArgument.field(field, f"larger than {MAX_CERT_CHARS} characters")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as err:
        raise InvalidArgument.field(field, "not a PEM certificate") from err
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as err:
        raise InvalidArgument.field(field, "not issued by this CP's CA") from err
    identity = identity_of_certificate(cert)
    if identity is None or identity.kind is not Kind.WL:
        raise InvalidArgument.field(field, "must name exactly one WL node identity (spiffe://xporty/wl/<id>)")
    if cert.not_valid_after_utc <= now:
        raise InvalidArgument.field(field, "expired")
    return cert, identity.wl_id


class CertificateImports:
    """Imports offline-issued WL node certificates into the CP's record."""

    def __init__(self, engine: AsyncEngine, ca_cert: x509.Certificate, audit: AuditLog) -> None:
        self._engine = engine
        self._ca_cert = ca_cert
        self._audit = audit

    async def import_pem(self, pem: str, *, actor: str, now: dt.datetime) -> Imported:
        """Record ``pem``; INVALID_ARGUMENT ``certificate_pem`` unless it is an unexpired WL certificate of this CA."""
        cert, wl_id = _parse(pem, self._ca_cert, now)
        serial = serial_hex(cert)
        async with self._engine.begin() as conn:
            known = (await conn.execute(
                sa.select(issued_certificates.c.serial).where(issued_certificates.c.serial == serial)
            )).first()
            if known is not None:
                return Imported(serial, wl_id, cert.not_valid_after_utc, imported=False)
            record = await record_issued(conn, wl_id=wl_id, cert=cert, reason="import", now=now)
            await self._audit.append(
                conn, actor=actor, action="identity.import", subject=f"wl/{wl_id}", before=None,
                after={"serial": record.serial, "not_after": record.not_after.isoformat(),
                       "fingerprint_sha256": record.fingerprint_sha256},
                correlation_id=correlation.get() or None,
            )
        return Imported(serial, wl_id, cert.not_valid_after_utc, imported=True)
