"""Opening a signed operations report: the node's signature over the serialized report, checked before ingest.

A node signs its operations report like its ledger events: ``signed.payload`` is the serialized report,
``signed.signature`` an ECDSA P-256 / SHA-256 signature over exactly those bytes, ``signed.signer_certificate_sha256``
the certificate whose key signed, which must be a certificate of the caller's WL (the caller's own mTLS certificate,
or one the CP issued: ``SignerDirectory``). The payload is never re-serialized before the check. An unsigned report
is accepted only by a CP in insecure development mode (where nodes have no key).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import DecodeError

from cp_server.telemetry.verifier import SignerDirectory
from xporty.cp.v1 import telemetry_service_pb2
from xwl_runtime.errors import InvalidArgument

MAX_PAYLOAD = 4 * 1024 * 1024


def _has_unsigned_fields(request: telemetry_service_pb2.ReportOperationsRequest) -> bool:
    return bool(request.peers or request.transitions or request.sync_lag_complete or request.HasField("window_start")
                or request.HasField("window_end"))


async def open_report(request: telemetry_service_pb2.ReportOperationsRequest, signers: SignerDirectory,
                      caller_pem: bytes | None, wl_id: str, *, allow_unsigned: bool
                      ) -> telemetry_service_pb2.ReportOperationsRequest:
    """The report to ingest; ``InvalidArgument`` naming the field when it is not signed by the caller's WL."""
    if not request.HasField("signed"):
        if allow_unsigned:
            return request
        raise InvalidArgument.field("signed", "an operations report must be signed with the caller's certificate key")
    signed = request.signed
    if _has_unsigned_fields(request):
        raise InvalidArgument.field("signed", "a signed report carries its fields in signed.payload only")
    if len(signed.payload) > MAX_PAYLOAD:
        raise InvalidArgument.field("signed.payload", f"at most {MAX_PAYLOAD} bytes")
    fingerprint = signed.signer_certificate_sha256
    signer = (await signers.resolve({fingerprint}, caller_pem)).get(fingerprint) if fingerprint else None
    if signer is None or signer.wl_id != wl_id:
        raise InvalidArgument.field("signed.signer_certificate_sha256", "not a certificate of the caller's WL")
    try:
        signer.public_key.verify(signed.signature, signed.payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise InvalidArgument.field("signed.signature", "does not verify with the signer's key") from None
    report = telemetry_service_pb2.ReportOperationsRequest()
    try:
        report.ParseFromString(signed.payload)
    except DecodeError:
        raise InvalidArgument.field("signed.payload", "not a ReportOperationsRequest") from None
    if report.HasField("signed"):
        raise InvalidArgument.field("signed.payload", "a signed report cannot nest another")
    return report
