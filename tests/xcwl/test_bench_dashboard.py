"""``xcwl bench dashboard`` at a tiny size: every figure is present, and the pages answer."""

from __future__ import annotations

import argparse

from xcwl.bench import dashboard


async def test_tiny_dashboard_bench_reports_every_figure() -> None:
    parser = argparse.ArgumentParser()
    dashboard.add_arguments(parser)
    args = parser.parse_args(["--wls", "4", "--events", "400", "--days", "2", "--samples", "5",
                              "--ingest-events", "400", "--ingest-rounds", "2", "--skip-postgres"])
    args.quiet, args.progress = True, None
    out = await dashboard.run(args)
    for page in ("overview", "heatmap", "pair"):
        assert out[f"dashboard.{page}.p99_ms.sqlite"] > 0
    assert out["dashboard.directions"] == 12
    assert out["dashboard.ingest.events_per_s.with_rollups.sqlite"] > 0
    assert out["dashboard.ingest.events_per_s.without_rollups.sqlite"] > 0
    assert out["dashboard.ingest.rounds"] == 2
    assert (0 < out["dashboard.ingest.ratio_min.sqlite"] <= out["dashboard.ingest.ratio.sqlite"]
            <= out["dashboard.ingest.ratio_max.sqlite"])
    assert out["dashboard.ingest.cpu_ratio.sqlite"] > 0
