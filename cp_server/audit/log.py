"""The append-only, hash-chained, signed audit log of every state change at the CP.

Record ``n`` stores ``hash_n = sha256(hash_{n-1} || "\\n" || canonical_json(record_n))`` (``hash_0`` = 64 zeros)
and an ECDSA P-256 / SHA-256 signature by the CA key over the ASCII hex of ``hash_n``. Canonical JSON: sorted
keys, no spaces, UTF-8; decimals as strings, datetimes as ISO-8601 UTC with microseconds. ``before``/``after``
are stored as canonical JSON text and hashed as that text.

Appends happen inside the caller's transaction and take the next sequence number and the chain head from the
single ``cp_state`` row with an ``UPDATE … RETURNING``: the row lock serializes appenders of every CP replica, so
the chain never forks and a rolled-back transaction leaves no gap. ``cp_state.audit_head`` lets ``verify`` detect a
truncated tail as long as the head was not rewound with it; a rewound head is caught only by comparing with a signed
checkpoint kept outside the database (``checkpoint.py``).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.store.schema import CP_STATE_ID, GENESIS_HASH, audit_log, cp_state
from xwl_runtime import correlation
from xwl_runtime.clock import Clock

from .checkpoint import Checkpointer

_VERIFY_BATCH = 1000

# The append path's statements, built once (a statement object memoizes its cache key; values are bound per call).
_NEXT_SEQ = (
    cp_state.update()
    .where(cp_state.c.id == CP_STATE_ID)
    .values(audit_seq=cp_state.c.audit_seq + 1)
    .returning(cp_state.c.audit_seq, cp_state.c.audit_head)
)
_INSERT = audit_log.insert()
_SET_HEAD = cp_state.update().where(cp_state.c.id == CP_STATE_ID)
_SIGNATURE = ec.ECDSA(hashes.SHA256())


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON-serializable in an audit record: {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class AuditEntry:
    """One stored record."""

    seq: int
    create_time: dt.datetime
    actor: str
    action: str
    subject: str
    correlation_id: str
    before_json: str
    after_json: str
    prev_hash: str
    hash: str
    signature: str


def record_hash(prev_hash: str, *, seq: int, create_time: dt.datetime, actor: str, action: str, subject: str,
                correlation_id: str, before_json: str, after_json: str) -> str:
    """The chain hash of one record."""
    content = canonical_json({
        "seq": seq, "create_time": _iso(create_time), "actor": actor, "action": action, "subject": subject,
        "correlation_id": correlation_id, "before": before_json, "after": after_json,
    })
    return hashlib.sha256(prev_hash.encode() + b"\n" + content.encode()).hexdigest()


class AuditLog:
    """Appends to and verifies the audit log; signs with ``signing_key`` (the CA key)."""

    def __init__(self, signing_key: ec.EllipticCurvePrivateKey, clock: Clock) -> None:
        self._key = signing_key
        self._public = signing_key.public_key()
        self._clock = clock
        self.checkpoints = Checkpointer(signing_key, clock)
        """Signs checkpoints of this log's head with the same key."""

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The key that checks record signatures and checkpoints (the CA's)."""
        return self._public

    async def append(
        self,
        conn: AsyncConnection,
        *,
        actor: str,
        action: str,
        subject: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        correlation_id: str | None = None,
    ) -> int:
        """Append one record inside the caller's transaction; returns its sequence number."""
        cid = correlation_id if correlation_id is not None else correlation.get()
        row = (await conn.execute(_NEXT_SEQ)).one()
        seq, prev_hash = int(row.audit_seq), str(row.audit_head)
        now = self._clock.now().astimezone(dt.UTC)
        before_json = canonical_json(dict(before) if before is not None else None)
        after_json = canonical_json(dict(after) if after is not None else None)
        digest = record_hash(
            prev_hash, seq=seq, create_time=now, actor=actor, action=action, subject=subject,
            correlation_id=cid, before_json=before_json, after_json=after_json,
        )
        signature = base64.b64encode(self._key.sign(digest.encode(), _SIGNATURE)).decode()
        await conn.execute(
            _INSERT,
            {"seq": seq, "create_time": now, "actor": actor, "action": action, "subject": subject,
             "correlation_id": cid, "before_json": before_json, "after_json": after_json, "prev_hash": prev_hash,
             "hash": digest, "signature": signature},
        )
        await conn.execute(_SET_HEAD, {"audit_head": digest})
        return seq

    async def list(self, engine: AsyncEngine, *, after_seq: int, limit: int) -> list[AuditEntry]:
        """Records with ``seq > after_seq`` in order, at most ``limit``."""
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq).limit(limit)
                )
            ).mappings().all()
        return [AuditEntry(**dict(r)) for r in rows]

    async def count(self, engine: AsyncEngine) -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(audit_log))).scalar_one())

    def _signature_ok(self, entry: AuditEntry) -> bool:
        try:
            self._public.verify(base64.b64decode(entry.signature), entry.hash.encode(), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    def _entry_ok(self, entry: AuditEntry, expected_seq: int, prev_hash: str) -> bool:
        if entry.seq != expected_seq or entry.prev_hash != prev_hash:
            return False
        digest = record_hash(
            prev_hash, seq=entry.seq, create_time=entry.create_time, actor=entry.actor, action=entry.action,
            subject=entry.subject, correlation_id=entry.correlation_id, before_json=entry.before_json,
            after_json=entry.after_json,
        )
        return digest == entry.hash and self._signature_ok(entry)

    async def verify(self, engine: AsyncEngine) -> tuple[bool, int, int]:
        """Check every record's chain link, hash and signature, and that the head matches the last record.

        Returns ``(ok, records_checked, first_bad_sequence)``; ``first_bad_sequence`` is 0 when ok, and
        ``records_checked + 1`` when the tail was cut off (the head names a record that is missing).
        """
        prev_hash, expected, checked = GENESIS_HASH, 1, 0
        while True:
            batch = await self.list(engine, after_seq=expected - 1, limit=_VERIFY_BATCH)
            for entry in batch:
                if not self._entry_ok(entry, expected, prev_hash):
                    return False, checked, expected
                prev_hash, expected, checked = entry.hash, expected + 1, checked + 1
            if len(batch) < _VERIFY_BATCH:
                break
        async with engine.connect() as conn:
            head = (
                await conn.execute(
                    sa.select(cp_state.c.audit_seq, cp_state.c.audit_head).where(cp_state.c.id == CP_STATE_ID)
                )
            ).one()
        if int(head.audit_seq) != checked or head.audit_head != prev_hash:
            return False, checked, checked + 1
        return True, checked, 0
