"""Nodes report operations to the real CP only after a change; GetSloReport shows every figure with its target, and
a BREACH for the pair whose exporter answered in more than 500 ms."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from cp_server.slo.tables import peer_minutes
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory
from tests.wl_node.conftest import OPS, eventually
from tests.wl_node.risk.harness import ready, world
from wl_node.operations.reporter import OperationsReporter
from xporty.cp.v1 import analytics_service_pb2, analytics_service_pb2_grpc, operations_pb2, telemetry_service_pb2
from xporty.cp.v1 import telemetry_service_pb2_grpc as telemetry_grpc
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.event_signing import sign_operations_report
from xwl_runtime.identity import Identity
from xwl_runtime.tls import TlsMaterial, secure_channel

NAMES = {"confirmation_p99", "error_rate", "policy_drift_max", "policy_drift_p99", "reaction_p99",
         "events_with_correlation_and_signature"}


def _reporter(node: Any) -> OperationsReporter:
    for component in node.components:
        for loop in component.loops:
            owner = getattr(loop, "__self__", None)
            if isinstance(owner, OperationsReporter):
                return owner
    raise AssertionError("no operations reporter")


def signed(request: telemetry_service_pb2.ReportOperationsRequest, material: TlsMaterial
           ) -> telemetry_service_pb2.ReportOperationsRequest:
    """``request`` signed as a node signs it, with the key of ``material``."""
    return sign_operations_report(request, material.pair.key_pem, material.pair.cert_pem)


async def first_report_then_quiet(reporter: OperationsReporter, quiet_s: float = 0.5) -> None:
    """A started node sends one report, its catalog sync lag levels at start; then, idle, nothing."""
    await eventually(lambda: reporter.reports_sent >= 1, timeout=10)
    await asyncio.sleep(quiet_s)
    assert reporter.reports_sent == 1


async def _report(cp_port: int, pki: PkiFixture) -> dict[tuple[str, str], Any]:
    async with secure_channel(f"127.0.0.1:{cp_port}", pki.material(OPS), expected=Identity.cp()) as channel:
        resp = await analytics_service_pb2_grpc.AnalyticsServiceStub(channel).GetSloReport(
            analytics_service_pb2.GetSloReportRequest(window_seconds=3600), timeout=10)
    return {(f.name, f.scope): f for f in resp.figures}


async def test_slow_exporter_breaches_confirmation_p99_and_idle_nodes_send_nothing(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b", "wl-c"]) as w:
        b = await w.start_node("wl-b")
        await ready(b)
        reporter = _reporter(b)
        reporter.config = type(reporter.config)(batch_delay_s=0.1)
        await first_report_then_quiet(reporter)  # idle: nothing to report after the start's lag levels

        # What wl-b's trader client records per PlaceOrder: wl-a answers in 800 ms, wl-c in 20 ms (one timeout).
        for _ in range(50):
            b.ctx.metrics.order("wl-a", "confirmed", 0.8)
            b.ctx.metrics.order("wl-c", "confirmed", 0.02)
        b.ctx.metrics.order("wl-c", "error", None)
        await eventually(lambda: reporter.reports_sent >= 2, timeout=10)
        sent = reporter.reports_sent
        await asyncio.sleep(0.5)
        assert reporter.reports_sent == sent  # one batch, then quiet again

        figures = await _report(w.cp_port, pki)
        assert {name for name, _ in figures} == NAMES
        assert all(f.target for f in figures.values())
        slow, fast = figures[("confirmation_p99", "wl-b/wl-a")], figures[("confirmation_p99", "wl-b/wl-c")]
        assert (slow.value, slow.breach, slow.samples) == ("1.000", True, 50)  # the 1 s bucket: over 500 ms
        assert (fast.value, fast.breach) == ("0.025", False)
        assert figures[("confirmation_p99", "global")].breach
        errors = figures[("error_rate", "wl-b/wl-c")]
        assert (errors.value, errors.samples, errors.breach) == ("0.0196", 51, True)  # 1/51 > 0.5%
        assert not figures[("error_rate", "wl-b/wl-a")].breach
        drift = figures[("policy_drift_max", "global")]
        assert drift.samples >= 1 and not drift.breach


async def test_report_for_a_wl_that_is_not_registered_is_refused_and_stores_nothing(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b"]) as w:
        request = telemetry_service_pb2.ReportOperationsRequest(peers=[operations_pb2.PeerOperations(
            exporter_wl="wl-z", attempts=1, confirmed=1,
            confirmation=operations_pb2.LatencyHistogram(bounds_seconds=[0.1], counts=[1, 0]))])
        material = pki.material(Identity.wl("wl-b"))
        async with secure_channel(f"127.0.0.1:{w.cp_port}", material, expected=Identity.cp()) as channel:
            stub = telemetry_grpc.TelemetryServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ReportOperations(signed(request, material), timeout=10)
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert decode_rpc_error(err.value).reason == "INVALID_ARGUMENT" and "confirmation" in err.value.details()
            from xwl_runtime.metrics import LATENCY_BUCKETS_S
            request.peers[0].confirmation.CopyFrom(operations_pb2.LatencyHistogram(
                bounds_seconds=LATENCY_BUCKETS_S, counts=[1] + [0] * len(LATENCY_BUCKETS_S)))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ReportOperations(signed(request, material), timeout=10)
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "exporter_wl" in err.value.details()
        async with w.cp.ctx.engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(peer_minutes))).scalar_one() == 0


async def test_unsigned_tampered_or_foreign_signed_reports_are_refused_and_store_nothing(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b", "wl-c"]) as w:
        from xwl_runtime.metrics import LATENCY_BUCKETS_S

        request = telemetry_service_pb2.ReportOperationsRequest(peers=[operations_pb2.PeerOperations(
            exporter_wl="wl-a", attempts=2, confirmed=2, confirmation=operations_pb2.LatencyHistogram(
                bounds_seconds=LATENCY_BUCKETS_S, counts=[2] + [0] * len(LATENCY_BUCKETS_S)))])
        b, c = pki.material(Identity.wl("wl-b")), pki.material(Identity.wl("wl-c"))
        tampered = signed(request, b)
        tampered.signed.payload = tampered.signed.payload.replace(b"wl-a", b"wl-c")
        mixed = signed(request, b)
        mixed.peers.add(exporter_wl="wl-c", attempts=1)
        refusals = {
            "unsigned": (request, "signed: an operations report must be signed"),
            "tampered": (tampered, "signed.signature: does not verify"),
            "another WL's key": (signed(request, c), "signed.signer_certificate_sha256: not a certificate of the "
                                                     "caller's WL"),
            "unsigned fields beside": (mixed, "signed: a signed report carries its fields in signed.payload only"),
        }
        async with secure_channel(f"127.0.0.1:{w.cp_port}", b, expected=Identity.cp()) as channel:
            stub = telemetry_grpc.TelemetryServiceStub(channel)
            for what, (bad, message) in refusals.items():
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.ReportOperations(bad, timeout=10)
                assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT, what
                assert err.value.details().startswith(message), (what, err.value.details())
            async with w.cp.ctx.engine.connect() as conn:
                assert (await conn.execute(sa.select(sa.func.count()).select_from(peer_minutes))).scalar_one() == 0
            await stub.ReportOperations(signed(request, b), timeout=10)  # the same report, signed by wl-b: stored
        async with w.cp.ctx.engine.connect() as conn:
            rows = (await conn.execute(sa.select(peer_minutes.c.importer_wl, peer_minutes.c.exporter_wl,
                                                 peer_minutes.c.attempts))).all()
        assert [tuple(r) for r in rows] == [("wl-b", "wl-a", 2)]
