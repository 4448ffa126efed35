"""Signed ledger events: what a WL node ships to the CP's TelemetryService and how the CP checks it.

A ``xporty.cp.v1.SignedEvent`` carries the serialized ``LedgerEvent`` (``payload``), an ECDSA P-256 / SHA-256
signature over exactly those bytes (DER), and the hex SHA-256 of the DER encoding of the certificate whose key
signed. The signature covers the bytes as sent, so the verifier never re-serializes anything: a payload that was
altered in transit, or a signature made by another key, fails verification.

Nodes call ``sign(event, key, cert_pem)``; the CP calls ``verify(signed, public_key)`` once it has found the
certificate named by ``signer_certificate_sha256``. Operations reports are signed the same way
(``sign_operations_report``; checked by ``cp_server.slo.signed``).
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import DecodeError

from xporty.cp.v1 import telemetry_pb2, telemetry_service_pb2

_ALGORITHM = ec.ECDSA(hashes.SHA256())


class EventSignatureError(Exception):
    """A signed event cannot be trusted; ``reason`` is the machine-readable cause (e.g. ``BAD_SIGNATURE``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def certificate_sha256(cert: bytes | x509.Certificate) -> str:
    """Hex SHA-256 of a certificate's DER encoding; ``cert`` is PEM bytes or a parsed certificate."""
    parsed = cert if isinstance(cert, x509.Certificate) else x509.load_pem_x509_certificate(cert)
    return hashlib.sha256(parsed.public_bytes(serialization.Encoding.DER)).hexdigest()


def _private_key(key: ec.EllipticCurvePrivateKey | bytes) -> ec.EllipticCurvePrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    loaded = serialization.load_pem_private_key(key, password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError("event signing needs an ECDSA key")
    return loaded


def sign(
    event: telemetry_pb2.LedgerEvent,
    key: ec.EllipticCurvePrivateKey | bytes,
    cert_pem: bytes,
    *,
    fingerprint: str | None = None,
) -> telemetry_pb2.SignedEvent:
    """Serialize and sign ``event`` with the node's certificate key (PEM bytes or a loaded key).

    ``fingerprint`` may be passed when the caller already computed ``certificate_sha256(cert_pem)`` (signing many
    events with one certificate).
    """
    payload = event.SerializeToString(deterministic=True)
    signature = _private_key(key).sign(payload, _ALGORITHM)
    return telemetry_pb2.SignedEvent(
        payload=payload,
        signature=signature,
        signer_certificate_sha256=fingerprint or certificate_sha256(cert_pem),
    )


def sign_bytes(payload: bytes, key: ec.EllipticCurvePrivateKey | bytes) -> bytes:
    """DER ECDSA P-256 / SHA-256 signature over ``payload``."""
    return _private_key(key).sign(payload, _ALGORITHM)


def sign_operations_report(
    report: telemetry_service_pb2.ReportOperationsRequest, key: ec.EllipticCurvePrivateKey | bytes, cert_pem: bytes,
) -> telemetry_service_pb2.ReportOperationsRequest:
    """``report`` (fields 1 to 5) wrapped as a signed request: its bytes, their signature, the certificate's hash."""
    payload = report.SerializeToString(deterministic=True)
    return telemetry_service_pb2.ReportOperationsRequest(signed=telemetry_service_pb2.SignedOperationsReport(
        payload=payload, signature=sign_bytes(payload, key), signer_certificate_sha256=certificate_sha256(cert_pem)))


def verify(signed: telemetry_pb2.SignedEvent, public_key: ec.EllipticCurvePublicKey) -> telemetry_pb2.LedgerEvent:
    """Check the signature over ``payload`` with ``public_key`` and return the decoded event.

    Raises ``EventSignatureError`` with reason ``UNSIGNED``, ``BAD_SIGNATURE`` or ``BAD_PAYLOAD``.
    """
    if not signed.signature:
        raise EventSignatureError("UNSIGNED", "event carries no signature")
    try:
        public_key.verify(signed.signature, signed.payload, _ALGORITHM)
    except InvalidSignature as err:
        raise EventSignatureError("BAD_SIGNATURE", "signature does not verify with the signer's key") from err
    return decode(signed)


def decode(signed: telemetry_pb2.SignedEvent) -> telemetry_pb2.LedgerEvent:
    """The LedgerEvent inside ``signed`` (no signature check); ``BAD_PAYLOAD`` if it does not parse."""
    event = telemetry_pb2.LedgerEvent()
    try:
        event.ParseFromString(signed.payload)
    except DecodeError as err:
        raise EventSignatureError("BAD_PAYLOAD", "payload is not a LedgerEvent") from err
    return event


def certificate_public_key(cert_pem: bytes) -> ec.EllipticCurvePublicKey:
    """The ECDSA public key of a PEM certificate."""
    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("certificate key is not ECDSA")
    return key
