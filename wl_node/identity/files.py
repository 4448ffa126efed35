"""Writing the node's key pair so that a crash never leaves a certificate next to a key it does not belong to.

Both files are first staged as ``<name>.next`` (fsynced), then renamed over the live ones, key first. A crash
between the two renames leaves ``wl-<id>.crt.next`` behind; ``recover_pending`` (run before every load) finishes
the rename. A crash while staging leaves only ``.key.next`` (or nothing), which is discarded: the live pair is
still the old, consistent one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir, load_key, write_private, write_public
from xwl_runtime.tls import KeyPair, TlsMaterial

log = logging.getLogger(__name__)


def _staged(path: Path) -> Path:
    return path.with_name(path.name + ".next")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def key_matches_certificate(key_pem: bytes, cert_pem: bytes) -> bool:
    """True when the private key is the one the certificate certifies."""
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    cert_key = x509.load_pem_x509_certificate(cert_pem).public_key().public_bytes(der, spki)
    return load_key(key_pem).public_key().public_bytes(der, spki) == cert_key


def write_pair(pki: PkiDir, identity: Identity, pair: KeyPair) -> None:
    """Replace the identity's key pair in ``pki`` (see the module docstring for crash safety)."""
    key_path, cert_path = pki.key(identity), pki.cert(identity)
    pki.root.mkdir(parents=True, exist_ok=True)
    write_private(_staged(key_path), pair.key_pem)
    write_public(_staged(cert_path), pair.cert_pem)
    os.replace(_staged(key_path), key_path)
    os.replace(_staged(cert_path), cert_path)
    _fsync_dir(pki.root)


def recover_pending(pki: PkiDir, identity: Identity) -> None:
    """Finish or discard a pair write interrupted by a crash."""
    key_path, cert_path = pki.key(identity), pki.cert(identity)
    staged_key, staged_cert = _staged(key_path), _staged(cert_path)
    if not staged_cert.exists():
        staged_key.unlink(missing_ok=True)  # staging never completed: the live pair is intact
        return
    key_pem = (staged_key if staged_key.exists() else key_path).read_bytes()
    if key_matches_certificate(key_pem, staged_cert.read_bytes()):
        if staged_key.exists():
            os.replace(staged_key, key_path)
        os.replace(staged_cert, cert_path)
        log.warning("completed an interrupted certificate write", extra={"fields": {"identity": str(identity)}})
    else:
        staged_key.unlink(missing_ok=True)
        staged_cert.unlink(missing_ok=True)


def load_material(pki: PkiDir, identity: Identity) -> TlsMaterial:
    """The identity's TLS material after recovering any interrupted write."""
    recover_pending(pki, identity)
    return TlsMaterial.from_pki(pki, identity)
