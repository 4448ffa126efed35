"""Progress lines of long commands go to stderr after a quiet period, with the phase the work announced."""

from __future__ import annotations

import argparse
import asyncio
import io

from xcwl.bench_cmd import _with_progress
from xcwl.progress import announce, reporting


async def test_silent_when_fast_then_phases_with_elapsed_time() -> None:
    fast = io.StringIO()
    async with reporting("bench x", quiet_s=0.5, every_s=0.5, stream=fast):
        await asyncio.sleep(0.01)
    assert fast.getvalue() == ""

    slow = io.StringIO()
    async with reporting("bench x", quiet_s=0.05, every_s=0.05, stream=slow) as progress:
        progress.phase("n=10: policy propagation")
        await asyncio.sleep(0.12)
        progress.phase("n=50: baseline")
        await asyncio.sleep(0.12)
    lines = slow.getvalue().splitlines()
    assert lines[0].startswith("xcwl bench x: n=10: policy propagation (") and lines[0].endswith(" s)")
    assert any(line.startswith("xcwl bench x: n=50: baseline") for line in lines)
    printed = len(lines)
    await asyncio.sleep(0.12)
    assert len(slow.getvalue().splitlines()) == printed  # the ticker stopped with the work


async def test_bench_runner_hands_the_progress_to_the_module_and_quiet_silences_it(capsys) -> None:  # noqa: ANN001
    async def run(args: argparse.Namespace) -> dict[str, float]:
        announce(args, "warming up")
        await asyncio.sleep(0.01)
        return {"x.ms": 1.0}

    loud = argparse.Namespace(quiet=False)
    assert await _with_progress("x", run, loud) == {"x.ms": 1.0}
    assert loud.progress.label == "bench x" and loud.progress.current == "warming up"
    assert await _with_progress("x", run, argparse.Namespace(quiet=True)) == {"x.ms": 1.0}
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays for the result (one JSON object with --json)
