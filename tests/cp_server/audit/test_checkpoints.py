"""Audit checkpoints leave the CP: in every policy view, and on heartbeats for audited changes that do not bump the
policy version; each one verifies against ca.crt and names the stored head."""

from __future__ import annotations

import asyncio
import datetime as dt

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from cp_server.store.schema import cp_state
from tests.cp_server.core_harness import RPC_TIMEOUT, Cp, running_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import admin_service_pb2 as pb
from xporty.cp.v1 import audit_pb2, policy_service_pb2
from xwl_runtime.audit_checkpoint import (
    CheckpointInvalid,
    ca_public_key,
    sign_checkpoint,
    signed_text,
    verify_checkpoint,
)
from xwl_runtime.identity import Identity

WL = Identity.wl("wl-a")


async def head(cp: Cp) -> tuple[int, str, int]:
    async with cp.app.ctx.engine.connect() as conn:
        row = (await conn.execute(sa.select(cp_state.c.audit_seq, cp_state.c.audit_head,
                                            cp_state.c.policy_version))).one()
    return int(row.audit_seq), str(row.audit_head), int(row.policy_version)


def check(pki: PkiFixture, checkpoint: audit_pb2.AuditCheckpoint) -> None:
    verify_checkpoint(checkpoint, ca_public_key(pki.dir.ca_cert.read_bytes()))


async def test_views_and_heartbeats_carry_the_signed_head(pki: PkiFixture, db_url: str) -> None:
    async with running_cp(pki, db_url, heartbeat_interval=dt.timedelta(seconds=0.1)) as cp:
        await cp.register("wl-a", "wl-b")
        seq, stored, version = await head(cp)
        view = (await (await cp.policy(WL)).GetPolicies(
            policy_service_pb2.GetPoliciesRequest(), timeout=RPC_TIMEOUT)).view
        assert (view.version, view.audit_checkpoint.sequence, view.audit_checkpoint.head_hash) == (
            version, seq, stored)
        check(pki, view.audit_checkpoint)

        # A bootstrap token is audited without a policy version: the new head rides on the heartbeats.
        admin = await cp.admin()
        await admin.CreateBootstrapToken(pb.CreateBootstrapTokenRequest(wl_id="wl-a"), timeout=RPC_TIMEOUT)
        seq2, stored2, version2 = await head(cp)
        assert seq2 > seq and version2 == version  # (reaching the CP first imported wl-a's certificate: audited)
        stream = (await cp.policy(WL)).WatchPolicies(policy_service_pb2.WatchPoliciesRequest())
        try:
            async with asyncio.timeout(15):  # the hub re-reads the head at its resync tick (5 s)
                async for message in stream:
                    if message.WhichOneof("event") == "heartbeat" and message.heartbeat.audit_checkpoint.sequence:
                        carried = message.heartbeat.audit_checkpoint
                        if carried.sequence == seq2:
                            break
        finally:
            stream.cancel()
        assert carried.head_hash == stored2 and message.heartbeat.version == version
        check(pki, carried)


def test_a_checkpoint_binds_every_field_and_only_the_ca_signs_one(pki: PkiFixture) -> None:
    ca_key = pki.dir.load_ca().key
    public = ca_public_key(pki.dir.ca_cert.read_bytes())
    genuine = sign_checkpoint(ca_key, 7, "ab" * 32, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    verify_checkpoint(genuine, public)
    assert signed_text(genuine.sequence, genuine.head_hash, genuine.sign_time) == (
        b"xcwl-audit-checkpoint/v1\n7\n" + b"ab" * 32 + b"\n1767225600.000000000")
    for change in ({"sequence": 8}, {"head_hash": "cd" * 32}, {"signature": b"\x30\x06\x02\x01\x01\x02\x01\x01"}):
        bad = audit_pb2.AuditCheckpoint()
        bad.CopyFrom(genuine)
        for name, value in change.items():
            setattr(bad, name, value)
        try:
            verify_checkpoint(bad, public)
        except CheckpointInvalid:
            continue
        raise AssertionError(f"accepted a checkpoint with {change}")
    moved = audit_pb2.AuditCheckpoint()
    moved.CopyFrom(genuine)
    moved.sign_time.seconds += 1
    stranger = sign_checkpoint(ec.generate_private_key(ec.SECP256R1()), 7, "ab" * 32, dt.datetime.now(dt.UTC))
    for bad in (moved, stranger, audit_pb2.AuditCheckpoint(sequence=0, head_hash="1" * 64, signature=b"x"),
                audit_pb2.AuditCheckpoint(sequence=1, head_hash="AB" * 32, signature=genuine.signature)):
        try:
            verify_checkpoint(bad, public)
        except CheckpointInvalid:
            continue
        raise AssertionError("accepted a forged checkpoint")
