"""``xcwl bench mesh`` at a small size: a CP and three real node processes; every figure of the issue present,
trade without errors, and the global invariants checked (they gate the exit code)."""

from __future__ import annotations

import json

import pytest

from tests.xcwl.runner import xcwl

NODES = 3


@pytest.mark.timeout(300)  # four real processes start; about 30 s on an idle machine, far more on a loaded one
async def test_bench_mesh_json_runs_every_phase_on_real_processes() -> None:
    result = await xcwl("bench", "mesh", "--json", "--nodes", str(NODES), "--settle", "1", "--idle", "2",
                        "--policy-changes", "2", "--rate", "4", "--trade", "2", "--risk-pairs", "1", timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    figures = json.loads(lines[0])
    tag = f"n{NODES}"
    for name in ("idle.cpu_pct_per_node", "idle.cpu_pct_cp", "rss_mb_per_node", "policy.p99_ms", "confirm.p50_ms",
                 "confirm.p99_ms", "e2e.p99_ms", "error_rate", "revocation.p99_ms", "reaction.p99_ms", "invariants_ok"):
        assert f"mesh.{name}.{tag}" in figures, name
    assert figures[f"mesh.invariants_ok.{tag}"] == 1.0
    assert figures[f"mesh.error_rate.{tag}"] == 0.0
    # Real processes were measured: they hold memory and the propagation samples came from their reports.
    assert 20 < figures[f"mesh.rss_mb_per_node.{tag}"] < 500
    assert 0 < figures[f"mesh.pss_mb_per_node.{tag}"] <= figures[f"mesh.rss_mb_per_node.{tag}"]
    assert 20 < figures[f"mesh.rss_mb_per_node_after_trade.{tag}"] < 500
    assert 0 < figures[f"mesh.pss_mb_per_node_after_trade.{tag}"] <= figures[f"mesh.rss_mb_per_node_after_trade.{tag}"]
    assert 0 < figures[f"mesh.policy.p99_ms.{tag}"] < 60_000
    assert 0 < figures[f"mesh.confirm.p50_ms.{tag}"] <= figures[f"mesh.confirm.p99_ms.{tag}"]
    assert 0 < figures[f"mesh.revocation.p99_ms.{tag}"] < 60_000
    # The pair driven over its limit was disabled at both nodes (the phase fails the run otherwise).
    assert 0 <= figures[f"mesh.reaction.p99_ms.{tag}"] < 60_000
    # Progress went to stderr as the phases ran.
    for phase in ("idle", "policy:", "revocation:", "trade:", "after trade: RSS",
                  "risk: 1 DISABLE signal(s) effective at both nodes", "invariants:"):
        assert phase in result.stderr, phase
