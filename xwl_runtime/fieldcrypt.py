"""Encryption at rest of personal-data columns: AES-256-GCM per value, keys outside the database.

A stored value reads ``enc1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``: a fresh 96-bit nonce per value,
the key id in clear so rotation knows which key to use, and associated data naming the column (``table.column``)
so a ciphertext moved to another column does not decrypt. Lookups that need the clear value (a subject's e-mail)
go through ``blind_index``: an HMAC-SHA256 of the normalised value under a separate index key, which survives key
rotation (the index key is never rotated with the data keys).

Keys live in a key file (JSON, created 0600, never in the database)::

    {"active": "k2", "keys": {"k1": "<base64 32 bytes>", "k2": "…"}, "index_key": "<base64 32 bytes>"}

or in the environment variable ``XCWL_DATA_KEYS`` holding the same JSON (read at the CLI edge, passed in). A
``Keyring`` built from a file re-reads it when it meets a key id it does not know: ``xcwl keys rotate`` adds the new
key to the file first, so a serving process reads rows re-encrypted under it without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .safe_files import PRIVATE_MODE

PREFIX = "enc1"
ENV_VAR = "XCWL_DATA_KEYS"
NONCE_BYTES = 12
KEY_BYTES = 32
RELOAD_CHECK_S = 0.5
"""How often an encrypting process checks its key file for a rotation (``xcwl keys rotate`` waits longer)."""


class DecryptionError(Exception):
    """A value cannot be decrypted: unknown key id, wrong column, or tampered ciphertext."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class KeyMaterial:
    """The keys of one keyring: data keys by id, which one encrypts, and the blind-index key."""

    active: str
    keys: Mapping[str, bytes]
    index_key: bytes

    @classmethod
    def generate(cls, key_id: str = "k1") -> KeyMaterial:
        return cls(key_id, {key_id: secrets.token_bytes(KEY_BYTES)}, secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_json(cls, text: str) -> KeyMaterial:
        body = json.loads(text)
        keys = {str(k): _unb64(str(v)) for k, v in dict(body["keys"]).items()}
        active, index_key = str(body["active"]), _unb64(str(body["index_key"]))
        if active not in keys:
            raise ValueError(f"the active key {active!r} is not among the keys")
        if any(len(k) != KEY_BYTES for k in (*keys.values(), index_key)) or any(":" in k for k in keys):
            raise ValueError("every key must be 32 bytes (base64) and key ids must not contain ':'")
        return cls(active, keys, index_key)

    def to_json(self) -> str:
        return json.dumps({"active": self.active, "keys": {k: _b64(v) for k, v in self.keys.items()},
                           "index_key": _b64(self.index_key)}, indent=2)

    def with_new_active(self, key_id: str) -> KeyMaterial:
        """The same keys plus a fresh one, ``key_id``, made active (rotation's first step)."""
        if key_id in self.keys:
            raise ValueError(f"key id {key_id!r} already exists")
        return KeyMaterial(key_id, {**self.keys, key_id: secrets.token_bytes(KEY_BYTES)}, self.index_key)

    def without(self, key_id: str) -> KeyMaterial:
        """The keys minus a retired one (never the active one)."""
        if key_id == self.active:
            raise ValueError("the active key cannot be removed")
        return KeyMaterial(self.active, {k: v for k, v in self.keys.items() if k != key_id}, self.index_key)


def write_key_file(path: Path, material: KeyMaterial) -> None:
    """Write ``material`` to ``path`` atomically, owner-only (0600) from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(material.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, PRIVATE_MODE)
    os.replace(tmp, path)


def load_or_create_key_file(path: Path) -> KeyMaterial:
    """The key file's material; a new file with one fresh key when ``path`` does not exist."""
    if not path.exists():
        material = KeyMaterial.generate()
        write_key_file(path, material)
        return material
    return KeyMaterial.from_json(path.read_text())


class Keyring:
    """Encrypts and decrypts column values; thread-safe; re-reads its file on an unknown key id."""

    def __init__(self, material: KeyMaterial, *, path: Path | None = None) -> None:
        self._material = material
        self._path = path
        self._lock = threading.Lock()
        self._ciphers = {k: AESGCM(v) for k, v in material.keys.items()}
        self._index_mac = hmac.new(material.index_key, digestmod=hashlib.sha256)
        self._mtime = path.stat().st_mtime_ns if path is not None and path.exists() else 0
        self._checked = time.monotonic()

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        return cls(load_or_create_key_file(path), path=path)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Keyring | None:
        """The keyring held in ``XCWL_DATA_KEYS``, or None when it is not set."""
        text = environ.get(ENV_VAR, "")
        return cls(KeyMaterial.from_json(text)) if text else None

    @property
    def active(self) -> str:
        return self._material.active

    @property
    def material(self) -> KeyMaterial:
        return self._material

    def reload(self) -> None:
        """Re-read the key file (after ``xcwl keys rotate`` changed it)."""
        if self._path is None:
            return
        mtime = self._path.stat().st_mtime_ns
        material = KeyMaterial.from_json(self._path.read_text())
        with self._lock:
            self._material = material
            self._ciphers = {k: AESGCM(v) for k, v in material.keys.items()}
            self._index_mac = hmac.new(material.index_key, digestmod=hashlib.sha256)
            self._mtime = mtime

    def _maybe_reload(self) -> None:
        """At most once per ``RELOAD_CHECK_S``: pick up a rotated key file, so new rows use the new active key."""
        if self._path is None or time.monotonic() - self._checked < RELOAD_CHECK_S:
            return
        self._checked = time.monotonic()
        try:
            changed = self._path.stat().st_mtime_ns != self._mtime
        except OSError:
            return
        if changed:
            self.reload()

    def encrypt(self, value: str, column: str) -> str:
        """``value`` sealed under the active key, bound to ``column``; the empty string stays empty."""
        if not value:
            return ""
        self._maybe_reload()
        with self._lock:
            key_id, cipher = self._material.active, self._ciphers[self._material.active]
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = cipher.encrypt(nonce, value.encode(), column.encode())
        return f"{PREFIX}:{key_id}:{_b64(nonce + sealed)}"

    def decrypt(self, token: str, column: str) -> str:
        """The clear value of ``token``; ``DecryptionError`` when it cannot be opened."""
        if not token:
            return ""
        prefix, key_id, body = (token.split(":", 2) + ["", ""])[:3]
        if prefix != PREFIX:
            raise DecryptionError("not an encrypted value")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            self.reload()
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise DecryptionError(f"unknown data key id {key_id[:16]!r}")
        raw = _unb64(body)
        try:
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], column.encode()).decode()
        except InvalidTag as err:
            raise DecryptionError("ciphertext does not authenticate for this column") from err

    def key_id_of(self, token: str) -> str:
        """The key id a stored value was sealed with ("" for an empty value)."""
        return token.split(":", 2)[1] if token.startswith(PREFIX + ":") else ""

    def blind_index(self, value: str) -> str:
        """A keyed hash of the normalised ``value`` (trimmed, lower-cased) for equality lookups."""
        norm = " ".join(value.split()).lower()
        mac = self._index_mac.copy()  # keyed once per keyring: a copy skips the key set-up per value
        mac.update(norm.encode())
        return mac.hexdigest()

    def handle(self, *parts: str) -> str:
        """An opaque, stable handle for ``parts`` (e.g. a contact's account id): reveals nothing without the key."""
        mac = self._index_mac.copy()
        mac.update(b"handle\x00" + "\x00".join(parts).encode())
        return "ch_" + _b64(mac.digest()[:18])


class PlaintextKeyring(Keyring):
    """Stores values as given: ONLY for ``xcwl bench … --compare-plaintext``, which measures what encryption costs
    by running the same bench without it. Never built by a node."""

    def __init__(self) -> None:
        super().__init__(KeyMaterial.generate())

    def encrypt(self, value: str, column: str) -> str:
        return value

    def decrypt(self, token: str, column: str) -> str:
        return token
