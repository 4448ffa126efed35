"""``xcwl demo`` as README's first command runs it: a subprocess that must exit 0 after showing propagation."""

from __future__ import annotations

import re
import time

from tests.xcwl.runner import xcwl

DEMO_BUDGET_S = 45.0


async def test_demo_runs_end_to_end_and_shows_every_node_applying_the_change() -> None:
    start = time.monotonic()
    result = await xcwl("demo", timeout=DEMO_BUDGET_S + 15)
    took = time.monotonic() - start
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert took < DEMO_BUDGET_S
    for wl in ("wl-a", "wl-b", "wl-c"):
        assert f"{wl} enrolled online" in out
    assert "wl-b/wl-c PAUSED" in out
    # The last table: every node at the same, final version, in sync.
    final = re.search(r"every node applied policy version (\d+) within \d+ ms:\n(.*?)\n\n", out, re.S)
    assert final is not None, out
    version = final.group(1)
    table = final.group(2).splitlines()
    assert table[0].split() == ["node", "applied", "current", "drift_s", "state", "rejected"]
    rows = [line.split() for line in table[2:]]
    assert [r[0] for r in rows] == ["wl-a", "wl-b", "wl-c"]
    assert all(r[1] == r[2] == version and " ".join(r[4:6]) == "in sync" for r in rows), table
    assert "all processes exited cleanly" in out
