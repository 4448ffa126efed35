"""The node's copy of the CP's audit head: the highest signed checkpoint it has seen, kept on disk, never lowered.

Every policy view and heartbeat from the CP carries a checkpoint signed by the CA key. The keeper adopts one only
when its signature verifies against the node's ``ca.crt`` and its sequence is higher than the kept one. A lower
sequence, or the same sequence with another hash, means the CP's log was cut or rewritten (or a CP restored from
an old backup): it is logged as a security warning and NOT adopted, so the node keeps the evidence an operator
compares with ``xcwl audit verify --node``. Operators read it with ``GetNodeState``.

File ``<state_dir>/audit-checkpoint-<wl_id>.json`` (0600, written atomically)::

    {"format": "xcwl.audit-checkpoint/1", "checkpoint": "<base64 of the serialized AuditCheckpoint>"}
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import DecodeError

from xporty.cp.v1 import audit_pb2
from xwl_runtime.audit_checkpoint import CheckpointInvalid, describe, verify_checkpoint
from xwl_runtime.safe_files import PRIVATE_MODE, write_atomically

log = logging.getLogger(__name__)

FORMAT = "xcwl.audit-checkpoint/1"


class Offer(enum.Enum):
    """What the keeper did with an offered checkpoint."""

    ADOPTED = "adopted"
    """Newer than the kept one: now kept (and persisted)."""
    SAME = "same"
    """The kept head again (a re-signed copy changes nothing)."""
    BAD_SIGNATURE = "bad_signature"
    """Malformed or not signed by the node's CA: ignored."""
    LOWER = "lower"
    """Older than the kept one: the CP's head went back. Not adopted."""
    CONFLICT = "conflict"
    """Same sequence, another hash: the chain was rewritten. Not adopted."""


class CheckpointKeeper:
    """Holds, checks and persists the highest audit checkpoint of the CP that this node has seen."""

    def __init__(self, state_dir: Path, wl_id: str, ca_key: ec.EllipticCurvePublicKey) -> None:
        self.path = Path(state_dir) / f"audit-checkpoint-{wl_id}.json"
        self._ca_key = ca_key
        self._kept: audit_pb2.AuditCheckpoint | None = None
        self._lock = asyncio.Lock()
        self.refused = 0
        """Distinct checkpoints refused since start (bad signature, lower, conflicting)."""
        self._last_key: tuple[int, str, bytes] | None = None
        self.last_refused: tuple[Offer, int, str] | None = None
        """The last refusal: (outcome, sequence, head hash). The same head again is neither logged nor counted
        (every heartbeat repeats it)."""

    @property
    def kept(self) -> audit_pb2.AuditCheckpoint | None:
        """The highest valid checkpoint seen (None before the first)."""
        return self._kept

    def load(self) -> None:
        """Read the persisted checkpoint at start-up; an unusable file is moved aside and logged, never trusted."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            checkpoint = audit_pb2.AuditCheckpoint.FromString(base64.b64decode(doc["checkpoint"], validate=True))
            verify_checkpoint(checkpoint, self._ca_key)
        except (ValueError, KeyError, TypeError, DecodeError, CheckpointInvalid) as err:
            moved = self.path.with_suffix(".corrupt")
            os.replace(self.path, moved)
            log.error("kept audit checkpoint unusable; starting without one",
                      extra={"fields": {"error": str(err)[:200], "moved_to": str(moved)}})
            return
        self._kept = checkpoint

    async def offer(self, checkpoint: audit_pb2.AuditCheckpoint) -> Offer:
        """Check ``checkpoint`` and keep it if it is the highest seen (see the module docstring)."""
        async with self._lock:
            last = self.last_refused
            if last is not None and self._refusal_key(last[0], checkpoint) == self._last_key:
                return last[0]
            outcome = self._judge(checkpoint)
            if outcome is Offer.ADOPTED:
                data = json.dumps({
                    "format": FORMAT,
                    "checkpoint": base64.b64encode(checkpoint.SerializeToString(deterministic=True)).decode(),
                }).encode()
                await asyncio.to_thread(write_atomically, self.path, data, mode=PRIVATE_MODE)
                self._kept = checkpoint
            elif outcome is not Offer.SAME:
                self.refused += 1
                self.last_refused = (outcome, checkpoint.sequence, checkpoint.head_hash)
                self._last_key = self._refusal_key(outcome, checkpoint)
            return outcome

    @staticmethod
    def _refusal_key(outcome: Offer, checkpoint: audit_pb2.AuditCheckpoint) -> tuple[int, str, bytes]:
        # A genuine head is the same fact whatever its signing time; an unverified one is the same only byte for
        # byte (a forged copy must never mask the genuine checkpoint with the same head).
        signature = checkpoint.signature if outcome is Offer.BAD_SIGNATURE else b""
        return checkpoint.sequence, checkpoint.head_hash, signature

    def _judge(self, checkpoint: audit_pb2.AuditCheckpoint) -> Offer:
        try:
            verify_checkpoint(checkpoint, self._ca_key)
        except CheckpointInvalid as err:
            log.warning("security: audit checkpoint refused, signature invalid",
                        extra={"fields": {"error": str(err), **describe(checkpoint)}})
            return Offer.BAD_SIGNATURE
        kept = self._kept
        if kept is None or checkpoint.sequence > kept.sequence:
            return Offer.ADOPTED
        if checkpoint.sequence == kept.sequence and checkpoint.head_hash == kept.head_hash:
            return Offer.SAME
        fields = {"kept_sequence": kept.sequence, "kept_head_hash": kept.head_hash[:16],
                  "received_sequence": checkpoint.sequence, "received_head_hash": checkpoint.head_hash[:16]}
        if checkpoint.sequence < kept.sequence:
            log.warning("security: the CP's audit head went back below the kept checkpoint; not adopted",
                        extra={"fields": fields})
            return Offer.LOWER
        log.warning("security: the CP's audit head conflicts with the kept checkpoint; not adopted",
                    extra={"fields": fields})
        return Offer.CONFLICT
