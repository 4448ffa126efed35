"""Signed checkpoints of the audit head, and comparing kept checkpoints with the stored chain.

The chain alone cannot show a cut tail: whoever can write the database can delete the last records and rewind
``cp_state.audit_seq/audit_head``, and what remains still verifies. A checkpoint signed by the CA key and kept
outside the database (every WL node keeps the highest it has seen; operators export one with ``xcwl audit
checkpoint``) pins the chain: the record at its sequence must still exist with its hash. Because each record's hash
covers the previous one, a match also pins every earlier record.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cp_server.store.schema import CP_STATE_ID, audit_log, cp_state
from xporty.cp.v1 import admin_service_pb2, audit_pb2
from xwl_runtime.audit_checkpoint import sign_checkpoint
from xwl_runtime.clock import Clock

_HEAD = sa.select(cp_state.c.audit_seq, cp_state.c.audit_head).where(cp_state.c.id == CP_STATE_ID)
_LAST_SEQ = sa.select(sa.func.max(audit_log.c.seq))

Result = admin_service_pb2.AuditCheckpointResult


async def read_head(conn: AsyncConnection) -> tuple[int, str]:
    """The stored ``(audit_seq, audit_head)``."""
    row = (await conn.execute(_HEAD)).one()
    return int(row.audit_seq), str(row.audit_head)


class Checkpointer:
    """Signs the current audit head with the CA key (the key the audit records are signed with)."""

    def __init__(self, signing_key: ec.EllipticCurvePrivateKey, clock: Clock) -> None:
        self._key = signing_key
        self._clock = clock

    def sign(self, sequence: int, head_hash: str) -> audit_pb2.AuditCheckpoint:
        return sign_checkpoint(self._key, sequence, head_hash, self._clock.now())

    async def current(self, engine: AsyncEngine) -> audit_pb2.AuditCheckpoint:
        """A checkpoint of the head as stored now."""
        async with engine.connect() as conn:
            sequence, head = await read_head(conn)
        return self.sign(sequence, head)


async def compare(
    engine: AsyncEngine, checkpoints: Sequence[audit_pb2.AuditCheckpoint]
) -> list[admin_service_pb2.AuditCheckpointCheck]:
    """How each (already signature-checked) checkpoint compares with the stored records, in the given order."""
    wanted = sorted({c.sequence for c in checkpoints if c.sequence > 0})
    async with engine.connect() as conn:
        last = (await conn.execute(_LAST_SEQ)).scalar_one_or_none()
        stored: dict[int, str] = {}
        if wanted:
            rows = await conn.execute(sa.select(audit_log.c.seq, audit_log.c.hash).where(audit_log.c.seq.in_(wanted)))
            stored = {int(r.seq): str(r.hash) for r in rows}
    last_seq = int(last or 0)
    checks = []
    for checkpoint in checkpoints:
        stored_hash = stored.get(checkpoint.sequence, "") if checkpoint.sequence > 0 else checkpoint.head_hash
        if checkpoint.sequence > 0 and not stored_hash:
            result = Result.AUDIT_CHECKPOINT_RESULT_TRUNCATED
        elif stored_hash != checkpoint.head_hash:
            result = Result.AUDIT_CHECKPOINT_RESULT_REWRITTEN
        else:
            result = Result.AUDIT_CHECKPOINT_RESULT_MATCH
        checks.append(admin_service_pb2.AuditCheckpointCheck(
            sequence=checkpoint.sequence, result=result, checkpoint_hash=checkpoint.head_hash,
            stored_hash=stored_hash, stored_sequence=last_seq,
        ))
    return checks


def first_failure(checks: Sequence[admin_service_pb2.AuditCheckpointCheck]) -> int:
    """The first sequence a failed check proves wrong (0 if every check matched).

    A cut tail is first wrong at the first missing record; a rewritten record at or before the checkpoint's
    sequence (which one cannot be told from the checkpoint alone, so its sequence is reported).
    """
    bad = [
        c.stored_sequence + 1 if c.result == Result.AUDIT_CHECKPOINT_RESULT_TRUNCATED else c.sequence
        for c in checks if c.result != Result.AUDIT_CHECKPOINT_RESULT_MATCH
    ]
    return min(bad, default=0)
