"""``xcwl bench sync`` end to end at a small size: the exporter child process, the full sync and the change delays."""

from __future__ import annotations

import argparse

from xcwl.bench import sync as bench


async def test_bench_sync_small_run_reports_every_figure() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--offers", "600", "--exporters", "2", "--changes", "20", "--change-rate", "100",
                              "--skip-postgres"])
    figures = await bench.run(args)
    assert set(figures) == {
        "sync.rounds", "sync.full.offers_per_s.sqlite", "sync.full.seconds.sqlite", "sync.full.importer_cpu_s.sqlite",
        "sync.full.exporters_cpu_s.sqlite", "sync.change_delay.p50_ms", "sync.change_delay.p99_ms",
        "sync.change_delay.p999_ms", "sync.change_delay.max_ms",
    }
    assert figures["sync.full.offers_per_s.sqlite"] > 0
    assert figures["sync.full.exporters_cpu_s.sqlite"] > 0  # the child process did the serving
    assert 0 < figures["sync.change_delay.p50_ms"] <= figures["sync.change_delay.p99_ms"] \
        <= figures["sync.change_delay.p999_ms"] <= figures["sync.change_delay.max_ms"] < 10_000


async def test_bench_sync_compare_plaintext_interleaves_both_variants_and_prints_their_ratios() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--offers", "200", "--exporters", "2", "--changes", "20", "--change-rate", "100",
                              "--skip-postgres", "--compare-plaintext", "--rounds", "2"])
    figures = await bench.run(args)
    encrypted = {"sync.full.offers_per_s.sqlite", "sync.full.seconds.sqlite", "sync.full.importer_cpu_s.sqlite",
                 "sync.full.exporters_cpu_s.sqlite", "sync.change_delay.p50_ms", "sync.change_delay.p99_ms",
                 "sync.change_delay.p999_ms", "sync.change_delay.max_ms"}
    assert {k for k in figures if k.endswith(".plaintext")} == {k + ".plaintext" for k in encrypted}
    assert "sync.encryption_overhead.change_delay.max_ms" not in figures  # one sample: no ratio
    for key in encrypted - {"sync.change_delay.max_ms"}:
        ratio = figures["sync.encryption_overhead." + key.removeprefix("sync.")]
        assert ratio == round(figures[key] / figures[key + ".plaintext"], 3)
    # the median of same-round ratios, beside the ratio of medians (the change delays' max is not per round)
    assert {k.removeprefix("sync.encryption_overhead_paired.") for k in figures
            if k.startswith("sync.encryption_overhead_paired.")} == \
        {k.removeprefix("sync.") for k in encrypted} - {"change_delay.max_ms"}
    assert 0 < figures["sync.encryption_overhead_paired.full.offers_per_s.sqlite"] < 10
