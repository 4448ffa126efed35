"""JWT signing-key rotation: a new key with a new ``kid`` signs at once; the previous one stays published.

Before the first rotation the CP signs with ``jwt-signing.key`` (``cp_server.identity.signing``) and publishes only
it. ``rotate`` (one versioned, audited change) records the previous key with ``retire_at = now + token lifetime``,
creates ``jwt-signing-<kid>.key`` next to it (mode 0600, O_EXCL, through a fresh uniquely named temp file and a
no-clobber hard link, so CP replicas sharing the PKI directory share it) and records the new key as current. Every
policy view then carries both keys; tokens signed by the old key were issued before the rotation and expire within
one lifetime. ``drop_retired`` (run by the component's loop, one change) removes keys past ``retire_at`` from the
views: a node then refuses the old kid (``TOKEN_UNKNOWN_KEY``), even if that key leaked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.exc import SQLAlchemyError

from cp_server.policy import trust_protos as protos
from cp_server.store.changes import ChangeRunner, Committed, Tx
from cp_server.store.records import World
from cp_server.store.trust_tables import token_keys
from xporty.cp.v1 import identity_pb2
from xwl_runtime.clock import Clock
from xwl_runtime.errors import Unavailable
from xwl_runtime.pki import key_to_pem, load_key, new_private_key
from xwl_runtime.tokens import key_id

log = logging.getLogger(__name__)

RETIRE_POLL_S = 1.0
"""How often the loop looks (in memory) for a key past its retire time."""


def key_file(pki_dir: Path, kid: str) -> Path:
    """Where the private key with ``kid`` lives."""
    return pki_dir / f"jwt-signing-{kid}.key"


def _public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _write_new_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Create ``path`` holding ``key`` (0600); never replaces an existing file, never reuses a temp file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_to_pem(key))
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)  # FileExistsError if present: a kid is a hash of the key, so that cannot be another key
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Rotation:
    """What a rotation did."""

    current: identity_pb2.VerificationKey
    previous_kid: str
    previous_retire_at: dt.datetime


class TokenKeys:
    """The CP's current signing key and published verification keys, read from the installed policy world."""

    def __init__(
        self, *, pki_dir: Path, initial: ec.EllipticCurvePrivateKey, world: Callable[[], World],
        changes: ChangeRunner, clock: Clock, token_lifetime: dt.timedelta,
    ) -> None:
        self._pki_dir = pki_dir
        self._initial = initial
        self._initial_kid = key_id(initial.public_key())
        self._world = world
        self._changes = changes
        self._clock = clock
        self._lifetime = token_lifetime
        self._loaded: dict[str, ec.EllipticCurvePrivateKey] = {self._initial_kid: initial}

    def signing_key(self) -> ec.EllipticCurvePrivateKey:
        """The key new tokens are signed with."""
        current = next((k for k in self._world().token_keys if k.retire_at is None), None)
        if current is None:
            return self._initial
        key = self._loaded.get(current.kid)
        if key is None:
            try:
                key = load_key(key_file(self._pki_dir, current.kid).read_bytes())
            except (OSError, ValueError) as err:
                log.error("JWT signing key file unreadable", extra={"fields": {"kid": current.kid}})
                raise Unavailable("the current token signing key is not available",
                                  reason="TOKEN_KEY_UNAVAILABLE") from err
            if key_id(key.public_key()) != current.kid:
                raise Unavailable("the current token signing key is not available", reason="TOKEN_KEY_UNAVAILABLE")
            self._loaded[current.kid] = key
        return key

    def published(self) -> list[identity_pb2.VerificationKey]:
        """The verification keys every node holds now (the JWKS)."""
        keys = self._world().token_keys
        if keys:
            return [protos.verification_key(k) for k in keys]
        return [identity_pb2.VerificationKey(kid=self._initial_kid, algorithm="ES256",
                                             public_key_pem=_public_pem(self._initial))]

    async def rotate(self, actor: str) -> Committed[Rotation]:
        """Sign with a new key from now on; the previous one stays published for one token lifetime."""
        new_key = new_private_key()
        new_kid = key_id(new_key.public_key())
        await asyncio.to_thread(_write_new_key, key_file(self._pki_dir, new_kid), new_key)
        self._loaded[new_kid] = new_key

        async def body(tx: Tx) -> Rotation:
            t = token_keys.c
            retire_at = tx.now + self._lifetime
            current = (await tx.conn.execute(
                sa.select(t.kid).where(t.retire_at.is_(None), t.dropped_at.is_(None))
            )).scalar_one_or_none()
            if current is None:  # first rotation: the key of jwt-signing.key becomes a recorded, retiring key
                current = self._initial_kid
                await tx.conn.execute(token_keys.insert().values(
                    kid=current, public_key_pem=_public_pem(self._initial), created_at=tx.now, retire_at=retire_at,
                    dropped_at=None, changed_version=tx.version,
                ))
            else:
                await tx.conn.execute(token_keys.update().where(t.kid == current).values(
                    retire_at=retire_at, changed_version=tx.version,
                ))
            await tx.conn.execute(token_keys.insert().values(
                kid=new_kid, public_key_pem=_public_pem(new_key), created_at=tx.now, retire_at=None,
                dropped_at=None, changed_version=tx.version,
            ))
            await tx.audit("token_key.rotate", "token_keys", {"kid": current},
                           {"kid": new_kid, "previous_kid": current, "previous_retire_time": retire_at})
            published = identity_pb2.VerificationKey(kid=new_kid, algorithm="ES256",
                                                     public_key_pem=_public_pem(new_key))
            return Rotation(current=published, previous_kid=current, previous_retire_at=retire_at)

        return await self._changes.run("token_key.rotate", actor, body)

    async def drop_retired(self) -> list[str]:
        """Stop publishing every key past its retire time (one change); the kids dropped."""
        now = self._clock.now()
        if not any(k.retire_at is not None and k.retire_at <= now for k in self._world().token_keys):
            return []

        async def body(tx: Tx) -> list[str]:
            t = token_keys.c
            due = list((await tx.conn.execute(
                sa.select(t.kid).where(t.dropped_at.is_(None), t.retire_at.is_not(None), t.retire_at <= tx.now)
            )).scalars())
            if due:
                await tx.conn.execute(token_keys.update().where(t.kid.in_(due)).values(
                    dropped_at=tx.now, changed_version=tx.version,
                ))
                await tx.audit("token_key.drop", "token_keys", {"kids": due}, {"kids": []})
            return due

        done = await self._changes.run("token_key.drop", "spiffe://xporty/cp", body)
        return done.value

    async def run(self, stop: asyncio.Event) -> None:
        """Drop retired keys as they come due, until ``stop``."""
        while not stop.is_set():
            try:
                dropped = await self.drop_retired()
                if dropped:
                    log.info("token keys dropped", extra={"fields": {"kids": dropped}})
            except Unavailable:
                pass  # the world is still loading: next round
            except SQLAlchemyError as err:  # the store is away: next round
                log.warning("token key drop failed", extra={"fields": {"error": type(err).__name__}})
            await self._clock.wait_any(stop, timeout=RETIRE_POLL_S)
