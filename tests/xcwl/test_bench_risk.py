"""``xcwl bench risk`` at a small size: the documented figures, every reaction sample from an enforcing node."""

from __future__ import annotations

import json

import pytest

from tests.support.databases import PG_ADMIN_DSN, postgres_available, postgres_required
from tests.xcwl.runner import xcwl

NODES, ROUNDS = 4, 2


async def test_bench_risk_json_reaction_comes_from_real_enforcing_nodes() -> None:
    if postgres_available():
        backend = ["--pg-admin-dsn", PG_ADMIN_DSN]
    elif postgres_required():
        pytest.fail(f"PostgreSQL is required (XCWL_REQUIRE_POSTGRES=1) but {PG_ADMIN_DSN} is unreachable")
    else:
        backend = ["--skip-postgres"]
    result = await xcwl("bench", "risk", "--json", "--subscribers", str(NODES), "--rounds", str(ROUNDS),
                        "--events", "200", "--batch", "50", "--publishers", "2", *backend, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    figures = json.loads(lines[0])
    assert all(isinstance(v, int | float) for v in figures.values())
    for key in ("risk.reaction.p50_ms.n50", "risk.reaction.p99_ms.n50", "risk.reaction.p99_ms.n50.burst",
                "risk.reaction.acked_p99_ms.n50", "risk.ingest.events_per_s.sqlite"):
        assert key in figures, key
    if "--skip-postgres" not in backend:
        assert figures["risk.ingest.events_per_s.postgres"] > 0
    assert 0 < figures["risk.reaction.p50_ms.n50"] <= figures["risk.reaction.p99_ms.n50"]
    # The CP stores the ack only after the node's listeners, durable write and AckSignal: later than effective.
    assert figures["risk.reaction.acked_p99_ms.n50"] >= figures["risk.reaction.p50_ms.n50"]
    pairs = NODES // 2
    # Each sample is the importer's AckSignal of one crossing; all nodes (exporters too) enforced and refused.
    assert figures["risk.reaction.samples"] == pairs * ROUNDS
    assert figures["risk.reaction.samples.burst"] == pairs
    assert figures["risk.reaction.nodes"] == NODES
    assert figures["risk.reaction.nodes_enforcing"] == NODES
    assert figures["risk.reaction.mismatches"] == 0
    applied = 4 * pairs * (ROUNDS + 1)  # DISABLE + ENABLE on both nodes of each pair, per crossing
    assert figures["risk.reaction.signals_applied"] == applied
    # Every signal is acknowledged durably: DISABLE/ENABLE (counted in applied) and the 80% ALERT and its clearing.
    assert figures["risk.reaction.durable_acks"] == 2 * applied
