"""``xcwl bench``: the dispatcher's contract (one flat JSON object of figure names to numbers) on a small policy run."""

from __future__ import annotations

import json

from tests.xcwl.runner import xcwl
from xcwl import bench_cmd
from xcwl.bench.policy import percentile


def test_percentile_is_nearest_rank() -> None:
    samples = [float(x) for x in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0


def test_bench_names_come_from_the_package() -> None:
    assert "policy" in bench_cmd.names()
    assert not any(name.startswith("_") for name in bench_cmd.names())


async def test_bench_policy_json_is_one_flat_object_with_the_documented_keys() -> None:
    result = await xcwl("bench", "policy", "--json", "--nodes", "1,2", "--changes", "4", "--gap-ms", "0",
                        "--revocations", "3", timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    figures = json.loads(lines[0])
    assert isinstance(figures, dict)
    assert all(isinstance(v, int | float) for v in figures.values())
    for n in (1, 2):
        for key in (f"policy.propagation.p50_ms.n{n}", f"policy.propagation.p99_ms.n{n}",
                    f"policy.baseline.p99_ms.n{n}", f"policy.ratio_p99.n{n}", f"policy.revocation.p99_ms.n{n}",
                    f"policy.revocation.ratio_p99.n{n}"):
            assert key in figures, key
        assert 0 < figures[f"policy.revocation.p50_ms.n{n}"] <= figures[f"policy.revocation.p99_ms.n{n}"]
        assert 0 < figures[f"policy.propagation.p50_ms.n{n}"] <= figures[f"policy.propagation.p99_ms.n{n}"]
        assert 0 < figures[f"policy.baseline.p99_ms.n{n}"]
