"""The CP's JWT signing key: one ECDSA P-256 key in the PKI directory, shared by every CP replica using it.

The key file is created once, atomically and without clobbering: a replica writes a private temp file and
hard-links it into place, which fails if another replica won the race; every replica then loads the winner's
key. Rotation (a new key published next to the old one for a token lifetime) is not implemented yet; the JWKS
shape already allows several keys.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from xporty.cp.v1 import identity_pb2
from xwl_runtime.pki import key_to_pem, load_key, new_private_key
from xwl_runtime.tokens import ALGORITHM, key_id

SIGNING_KEY_FILE = "jwt-signing.key"


def load_or_create_signing_key(pki_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The key in ``pki_dir/jwt-signing.key``, created (mode 0600) if absent."""
    path = pki_dir / SIGNING_KEY_FILE
    if not path.exists():
        _create_exclusively(path)
    key = load_key(path.read_bytes())
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path}: the JWT signing key must be ECDSA P-256 (ES256)")
    return key


def _create_exclusively(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_to_pem(new_private_key()))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic and never replaces: the first replica's key wins
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def verification_keys(key: ec.EllipticCurvePrivateKey) -> list[identity_pb2.VerificationKey]:
    """The public keys WL nodes verify CP tokens with (today: the one current key)."""
    public = key.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return [identity_pb2.VerificationKey(kid=key_id(public), algorithm=ALGORITHM, public_key_pem=pem.decode())]
