"""The JWT signing key: created once, private, shared by replicas that start together on one PKI directory."""

from __future__ import annotations

import hashlib
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from cp_server.identity.signing import SIGNING_KEY_FILE, load_or_create_signing_key, verification_keys


def _spki(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_replicas_racing_on_one_directory_share_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda _i: load_or_create_signing_key(tmp_path), range(16)))
    assert len({_spki(k) for k in keys}) == 1
    path = tmp_path / SIGNING_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [SIGNING_KEY_FILE]  # no temp files left behind
    assert _spki(load_or_create_signing_key(tmp_path)) == _spki(keys[0])  # a restart loads the same key


def test_verification_key_names_its_key(tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path)
    (published,) = verification_keys(key)
    assert published.algorithm == "ES256"
    assert published.kid == hashlib.sha256(_spki(key)).hexdigest()[:16]
    loaded = serialization.load_pem_public_key(published.public_key_pem.encode())
    assert loaded.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo) == _spki(key)
