"""Audit that survives a rewrite: whoever can write the CP's database cuts the audit tail and rewinds
``cp_state.audit_seq/audit_head`` (the chain alone then still verifies), or rewrites a record. Signed checkpoints
kept outside the database — by every WL node, and exported by operators — expose it; forged checkpoints are refused
by the node and by the CP; a node never lowers the head it keeps.

Real components throughout: the CP from ``build_cp`` on SQLite and PostgreSQL, a real node from ``build_node``
following it over mTLS, the ``xcwl`` command line as a subprocess; the scripted CP only where a test must send what
a genuine CP never would (forged or lower checkpoints).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from cp_server.store.schema import audit_log, cp_state
from tests.cp_server.core_harness import OPS, RPC_TIMEOUT, Cp, rpc_error, running_cp, wl_proto
from tests.support.pki import PkiFixture
from tests.support.trust import import_wls
from tests.wl_node.conftest import WL, eventually, node_settings
from tests.wl_node.fake_cp import FakeCp, ScriptedPolicyService, make_view, start_fake_cp
from tests.xcwl.runner import xcwl
from wl_node.app import NodeApp, build_node
from wl_node.policy.checkpoint import Offer
from xporty.cp.v1 import admin_service_pb2 as pb
from xporty.cp.v1 import audit_pb2
from xporty.node.v1 import storefront_service_pb2, storefront_service_pb2_grpc
from xwl_runtime.audit_checkpoint import sign_checkpoint
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

Result = pb.AuditCheckpointResult


# --- helpers ----------------------------------------------------------------------------------------------------------
async def stored_head(cp: Cp) -> tuple[int, str, int]:
    """(cp_state.audit_seq, cp_state.audit_head, number of audit rows) straight from the store."""
    async with cp.app.ctx.engine.connect() as conn:
        row = (await conn.execute(sa.select(cp_state.c.audit_seq, cp_state.c.audit_head))).one()
        rows = (await conn.execute(sa.select(sa.func.count()).select_from(audit_log))).scalar_one()
    return int(row.audit_seq), str(row.audit_head), int(rows)


async def truncate_and_rewind(cp: Cp, keep: int) -> None:
    """The attack: delete every record after ``keep`` and rewind the head to it, in one transaction."""
    async with cp.app.ctx.engine.begin() as conn:
        head = (await conn.execute(sa.select(audit_log.c.hash).where(audit_log.c.seq == keep))).scalar_one()
        await conn.execute(sa.delete(audit_log).where(audit_log.c.seq > keep))
        await conn.execute(sa.update(cp_state).values(audit_seq=keep, audit_head=head))


async def register(cp: Cp, wl_id: str) -> int:
    """One audited change (one record); returns the policy version it committed."""
    admin = await cp.admin()
    resp = await admin.RegisterWl(pb.RegisterWlRequest(white_label=wl_proto(wl_id)), timeout=RPC_TIMEOUT)
    return int(resp.version)


async def verify(cp: Cp, *checkpoints: audit_pb2.AuditCheckpoint) -> pb.VerifyAuditLogResponse:
    admin = await cp.admin()
    return await admin.VerifyAuditLog(pb.VerifyAuditLogRequest(checkpoints=list(checkpoints)), timeout=RPC_TIMEOUT)


async def node_checkpoint(pki: PkiFixture, port: int) -> audit_pb2.AuditCheckpoint | None:
    """The checkpoint the node reports to an operator (GetNodeState over mTLS)."""
    async with secure_channel(f"127.0.0.1:{port}", pki.material(OPS), expected=Identity.wl(WL)) as channel:
        resp = await storefront_service_pb2_grpc.StorefrontServiceStub(channel).GetNodeState(
            storefront_service_pb2.GetNodeStateRequest(), timeout=RPC_TIMEOUT)
    return resp.audit_checkpoint if resp.HasField("audit_checkpoint") else None


def kept(node: NodeApp) -> audit_pb2.AuditCheckpoint | None:
    assert node.agent.checkpoints is not None
    return node.agent.checkpoints.kept


def ops_flags(cp: Cp) -> list[str]:
    cp.pki.material(OPS)  # ops-alice.crt/.key in the PKI directory
    return ["--cp", cp.target, "--pki", str(cp.pki.dir.root), "--as", OPS.name]


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[Cp]:
    async with running_cp(pki, db_url, heartbeat_interval=dt.timedelta(seconds=0.2)) as running:
        yield running


# --- truncation with a rewound head ----------------------------------------------------------------------------------
async def test_cut_tail_with_rewound_head_is_detected_from_a_node_and_an_exported_checkpoint(
    cp: Cp, tmp_path: Path
) -> None:
    # The node's offline-issued certificate is imported first (an audited change without a policy version), so
    # the views of the three registrations that follow already carry the head of all four records.
    await import_wls(cp.app, cp.pki, WL)
    for wl_id in (WL, "wl-b", "wl-c"):
        await register(cp, wl_id)
    assert (await stored_head(cp))[0] == 4
    node = await build_node(node_settings(tmp_path, cp.pki, cp.target))
    try:
        await eventually(lambda: (k := kept(node)) is not None and k.sequence == 4)
        from_node = await node_checkpoint(cp.pki, node.port)
        assert from_node is not None and from_node.sequence == 4
        exported_file = tmp_path / "checkpoint.json"
        result = await xcwl("audit", "checkpoint", *ops_flags(cp), "--out", str(exported_file))
        assert result.returncode == 0, result.stderr
        exported = json.loads(exported_file.read_text())
        assert (int(exported["sequence"]), exported["head_hash"]) == (4, from_node.head_hash)

        await truncate_and_rewind(cp, keep=2)

        # The chain alone still verifies: this is the gap the checkpoints close.
        alone = await verify(cp)
        assert (alone.ok, alone.records, alone.first_bad_sequence) == (True, 2, 0)
        # Given the node's checkpoint: record 4 is missing, the first bad sequence is the first cut one.
        checked = await verify(cp, from_node)
        assert (checked.ok, checked.records, checked.first_bad_sequence) == (False, 2, 3)
        [check] = checked.checkpoint_checks
        assert (check.sequence, check.result, check.stored_sequence, check.stored_hash) == (
            4, Result.AUDIT_CHECKPOINT_RESULT_TRUNCATED, 2, "")
        # The same through the command line, from the exported file and from the node: exit 1, clear message.
        result = await xcwl("audit", "verify", *ops_flags(cp), "--checkpoint", str(exported_file),
                            "--node", f"{WL}@127.0.0.1:{node.port}")
        assert result.returncode == 1, result.stderr
        assert "audit log BROKEN at sequence 3" in result.stdout
        assert f"checkpoint {exported_file}: TRUNCATED: record 4 is missing" in result.stdout
        assert f"node 127.0.0.1:{node.port}: TRUNCATED: record 4 is missing" in result.stdout

        # The CP goes on at the rewound head: the node refuses the lower head and keeps its evidence...
        keeper = node.agent.checkpoints
        assert keeper is not None
        on_disk = keeper.path.read_bytes()
        version = await register(cp, "wl-e")
        seq, head, _ = await stored_head(cp)
        assert seq == 3
        await eventually(lambda: keeper.last_refused == (Offer.LOWER, 3, head))
        assert node.state.version == version
        assert kept(node) == from_node and keeper.path.read_bytes() == on_disk
        # ...and a different record 4 (the chain re-grown after the cut) conflicts with it.
        version = await register(cp, "wl-f")
        seq, head, rows = await stored_head(cp)
        assert (seq, rows) == (4, 4) and head != from_node.head_hash
        await eventually(lambda: keeper.last_refused == (Offer.CONFLICT, 4, head))
        assert node.state.version == version
        assert kept(node) == from_node and keeper.path.read_bytes() == on_disk
        assert await node_checkpoint(cp.pki, node.port) == from_node

        regrown = await verify(cp, from_node)
        assert (regrown.ok, regrown.records, regrown.first_bad_sequence) == (False, 4, 4)
        [check] = regrown.checkpoint_checks
        assert (check.result, check.checkpoint_hash, check.stored_hash) == (
            Result.AUDIT_CHECKPOINT_RESULT_REWRITTEN, from_node.head_hash, head)
        result = await xcwl("audit", "verify", *ops_flags(cp), "--node", f"{WL}@127.0.0.1:{node.port}")
        assert result.returncode == 1
        assert f"node 127.0.0.1:{node.port}: REWRITTEN: record 4 has hash {head[:16]}" in result.stdout
    finally:
        await node.stop(0)


async def test_an_intact_log_matches_its_checkpoints(cp: Cp) -> None:
    for wl_id in ("wl-a", "wl-b"):
        await register(cp, wl_id)
    admin = await cp.admin()
    first = (await admin.GetAuditCheckpoint(pb.GetAuditCheckpointRequest(), timeout=RPC_TIMEOUT)).checkpoint
    await register(cp, "wl-c")
    second = (await admin.GetAuditCheckpoint(pb.GetAuditCheckpointRequest(), timeout=RPC_TIMEOUT)).checkpoint
    seq, head, _ = await stored_head(cp)
    assert (first.sequence, second.sequence, second.head_hash) == (2, 3, head) == (2, seq, head)
    resp = await verify(cp, first, second)
    assert (resp.ok, resp.records, resp.first_bad_sequence) == (True, 3, 0)
    assert [c.result for c in resp.checkpoint_checks] == [Result.AUDIT_CHECKPOINT_RESULT_MATCH] * 2


async def test_a_rewritten_record_is_detected(cp: Cp) -> None:
    for wl_id in ("wl-a", "wl-b", "wl-c"):
        await register(cp, wl_id)
    admin = await cp.admin()
    checkpoint = (await admin.GetAuditCheckpoint(pb.GetAuditCheckpointRequest(), timeout=RPC_TIMEOUT)).checkpoint
    async with cp.app.ctx.engine.begin() as conn:  # rewrite record 2's content (the hash column left as signed)
        await conn.execute(sa.update(audit_log).where(audit_log.c.seq == 2)
                           .values(subject="wl/someone-else"))
    resp = await verify(cp, checkpoint)
    assert (resp.ok, resp.first_bad_sequence) == (False, 2)
    # Rewriting the hash column too breaks the signature and the next record's link just the same.
    async with cp.app.ctx.engine.begin() as conn:
        await conn.execute(sa.update(audit_log).where(audit_log.c.seq == 2).values(hash="f" * 64))
    resp = await verify(cp, checkpoint)
    assert (resp.ok, resp.first_bad_sequence) == (False, 2)


# --- forged checkpoints at the CP ---------------------------------------------------------------------------------
async def test_the_cp_refuses_a_checkpoint_it_did_not_sign(cp: Cp) -> None:
    for wl_id in ("wl-a", "wl-b"):
        await register(cp, wl_id)
    before = await stored_head(cp)
    admin = await cp.admin()
    genuine = (await admin.GetAuditCheckpoint(pb.GetAuditCheckpointRequest(), timeout=RPC_TIMEOUT)).checkpoint
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = sign_checkpoint(stranger, 1, genuine.head_hash, dt.datetime.now(dt.UTC))
    altered = audit_pb2.AuditCheckpoint()
    altered.CopyFrom(genuine)
    altered.sequence = 1  # a genuine signature over another sequence
    for bad in (forged, altered, audit_pb2.AuditCheckpoint(sequence=2, head_hash=genuine.head_hash)):
        code, reason, meta = await rpc_error(admin.VerifyAuditLog(
            pb.VerifyAuditLogRequest(checkpoints=[genuine, bad]), timeout=RPC_TIMEOUT))
        assert (code, reason, meta.get("field")) == (
            grpc.StatusCode.INVALID_ARGUMENT, "AUDIT_CHECKPOINT_INVALID", "checkpoints[1]")
    code, _, meta = await rpc_error(admin.VerifyAuditLog(
        pb.VerifyAuditLogRequest(checkpoints=[genuine] * 65), timeout=RPC_TIMEOUT))
    assert (code, meta.get("field")) == (grpc.StatusCode.INVALID_ARGUMENT, "checkpoints")
    assert await stored_head(cp) == before


async def test_only_operators_get_a_checkpoint(cp: Cp) -> None:
    await register(cp, "wl-a")
    stub = await cp.admin(Identity.wl("wl-a"))
    code, reason, _ = await rpc_error(stub.GetAuditCheckpoint(pb.GetAuditCheckpointRequest(), timeout=RPC_TIMEOUT))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")


# --- the node's keeper against a CP that sends what a genuine one never would -------------------------------------
@pytest.fixture
async def scripted_cp(pki: PkiFixture) -> AsyncIterator[FakeCp]:
    fake = await start_fake_cp(pki.material(Identity.cp()), ScriptedPolicyService())
    try:
        yield fake
    finally:
        await fake.stop()


def ca_signed(pki: PkiFixture, sequence: int, head: str) -> audit_pb2.AuditCheckpoint:
    return sign_checkpoint(pki.dir.load_ca().key, sequence, head, dt.datetime.now(dt.UTC))


async def test_the_node_refuses_forged_checkpoints_and_never_lowers_its_head(
    pki: PkiFixture, scripted_cp: FakeCp, tmp_path: Path
) -> None:
    settings = node_settings(tmp_path, pki, scripted_cp.target)
    service = scripted_cp.service
    stranger = ec.generate_private_key(ec.SECP256R1())
    view = make_view(WL, 1)
    view.audit_checkpoint.CopyFrom(sign_checkpoint(stranger, 7, "a" * 64, dt.datetime.now(dt.UTC)))
    service.view = view
    node = await build_node(settings)
    try:
        # A view whose checkpoint is not signed by the CA: the view applies, the checkpoint is refused.
        await eventually(lambda: node.state.version == 1)
        keeper = node.agent.checkpoints
        assert keeper is not None
        await eventually(lambda: keeper.refused == 1)
        assert keeper.kept is None and not keeper.path.exists()
        assert await node_checkpoint(pki, node.port) is None

        genuine = ca_signed(pki, 5, "b" * 64)
        view = make_view(WL, 2)
        view.audit_checkpoint.CopyFrom(genuine)
        service.push(view)
        await eventually(lambda: keeper.kept == genuine)
        assert await node_checkpoint(pki, node.port) == genuine
        on_disk = keeper.path.read_bytes()

        refusals = [
            sign_checkpoint(stranger, 9, "c" * 64, dt.datetime.now(dt.UTC)),  # higher, but forged
            ca_signed(pki, 3, "d" * 64),                                       # genuine, but lower
            ca_signed(pki, 5, "e" * 64),                                       # genuine, same sequence, other hash
        ]
        tampered = audit_pb2.AuditCheckpoint()
        tampered.CopyFrom(genuine)
        tampered.sequence = 6  # a genuine signature moved to a higher sequence
        refusals.append(tampered)
        for n, bad in enumerate(refusals, start=2):
            service.heartbeat(audit_checkpoint=bad)
            await eventually(lambda n=n: keeper.refused == n)  # type: ignore[misc]
            assert keeper.kept == genuine and keeper.path.read_bytes() == on_disk
        assert await node_checkpoint(pki, node.port) == genuine

        # The same head again (re-signed later) changes nothing and is not a refusal.
        service.heartbeat(audit_checkpoint=ca_signed(pki, 5, "b" * 64))
        higher = ca_signed(pki, 8, "f" * 64)
        service.heartbeat(audit_checkpoint=higher)
        await eventually(lambda: keeper.kept == higher)
        assert keeper.refused == 5
    finally:
        await node.stop(0)

    # A restarted node starts from the kept head, not from whatever the CP says next.
    service.view = make_view(WL, 3)
    service.view.audit_checkpoint.CopyFrom(ca_signed(pki, 2, "0" * 63 + "1"))
    node = await build_node(settings)
    try:
        keeper = node.agent.checkpoints
        assert keeper is not None and keeper.kept == higher
        await eventually(lambda: node.state.version == 3)
        await eventually(lambda: keeper.refused == 1)
        assert keeper.kept == higher
    finally:
        await node.stop(0)
