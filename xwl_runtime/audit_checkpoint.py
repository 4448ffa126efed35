"""Signed audit checkpoints: the CP's statement "record ``sequence`` of my audit log has hash ``head_hash``".

The CP signs with its CA key (the key that already signs every audit record), so only the CP can make one and
anyone holding ``ca.crt`` can check one. The signature covers a canonical text that names its purpose, so it can
never be mistaken for an audit record signature (the ASCII hex of a record hash) or anything else the CA signs::

    xcwl-audit-checkpoint/v1\\n<sequence>\\n<head_hash>\\n<sign_time seconds>.<nanos, 9 digits>

Used by the CP (sign), the WL nodes (check before keeping one) and ``xcwl`` (check an exported file).
"""

from __future__ import annotations

import datetime as dt
import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import timestamp_pb2

from xporty.cp.v1 import audit_pb2

DOMAIN = b"xcwl-audit-checkpoint/v1"
GENESIS_HASH = "0" * 64
_HASH = re.compile(r"[0-9a-f]{64}")
_ALGORITHM = ec.ECDSA(hashes.SHA256())
MAX_SEQUENCE = 2**63 - 1
MAX_SIGNATURE_BYTES = 128
"""A DER ECDSA P-256 signature is at most 72 bytes; anything far larger is refused before verifying."""


class CheckpointInvalid(ValueError):
    """The checkpoint is malformed or its signature does not verify against the CA."""


def signed_text(sequence: int, head_hash: str, sign_time: timestamp_pb2.Timestamp) -> bytes:
    """The exact bytes the CA key signs for a checkpoint."""
    return b"\n".join([
        DOMAIN, str(sequence).encode(), head_hash.encode(), f"{sign_time.seconds}.{sign_time.nanos:09d}".encode(),
    ])


def sign_checkpoint(
    key: ec.EllipticCurvePrivateKey, sequence: int, head_hash: str, now: dt.datetime
) -> audit_pb2.AuditCheckpoint:
    """A checkpoint of ``(sequence, head_hash)`` signed at ``now`` with the CA key."""
    if not _HASH.fullmatch(head_hash) or not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError("not an audit head")
    sign_time = timestamp_pb2.Timestamp()
    sign_time.FromDatetime(now.astimezone(dt.UTC))
    signature = key.sign(signed_text(sequence, head_hash, sign_time), _ALGORITHM)
    return audit_pb2.AuditCheckpoint(
        sequence=sequence, head_hash=head_hash, sign_time=sign_time, signature=signature
    )


def ca_public_key(ca_cert_pem: bytes) -> ec.EllipticCurvePublicKey:
    """The CA's public key, which checks checkpoints."""
    key = x509.load_pem_x509_certificate(ca_cert_pem).public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the CA key is not an ECDSA key")
    return key


def verify_checkpoint(checkpoint: audit_pb2.AuditCheckpoint, ca_key: ec.EllipticCurvePublicKey) -> None:
    """Raise ``CheckpointInvalid`` unless ``checkpoint`` is well formed and signed by the CA."""
    if not checkpoint.signature:
        raise CheckpointInvalid("no signature")
    if len(checkpoint.signature) > MAX_SIGNATURE_BYTES:
        raise CheckpointInvalid("signature too long")
    if not _HASH.fullmatch(checkpoint.head_hash):
        raise CheckpointInvalid("head_hash is not 64 lowercase hex characters")
    if checkpoint.sequence > MAX_SEQUENCE:
        raise CheckpointInvalid("sequence out of range")
    if checkpoint.sequence == 0 and checkpoint.head_hash != GENESIS_HASH:
        raise CheckpointInvalid("an empty log has the genesis hash")
    if not checkpoint.HasField("sign_time"):
        raise CheckpointInvalid("no sign_time")
    try:
        ca_key.verify(
            checkpoint.signature,
            signed_text(checkpoint.sequence, checkpoint.head_hash, checkpoint.sign_time),
            _ALGORITHM,
        )
    except (InvalidSignature, ValueError) as err:
        raise CheckpointInvalid("the signature does not verify against the CA") from err


def describe(checkpoint: audit_pb2.AuditCheckpoint) -> dict[str, object]:
    """A log-friendly summary (no signature bytes)."""
    return {"sequence": checkpoint.sequence, "head_hash": checkpoint.head_hash[:16]}
