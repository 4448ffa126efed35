"""``xcwl demo`` as README's first command runs it: a subprocess that must exit 0 after showing propagation, the
imported catalogs with converted (and re-priced) prices, a checkout burst whose numbers add up, and the risk
scenario (or the line saying why it was skipped)."""

from __future__ import annotations

import re
import time

from tests.xcwl.runner import xcwl

DEMO_BUDGET_S = 90.0
"""About 30 s on an idle 2-core machine; the margin absorbs other work sharing the machine (the budget catches a
hang, not a slow step)."""


def _table_after(out: str, title: str) -> list[list[str]]:
    """The rows (split on 2+ spaces) of the table printed right after the line starting with ``title``."""
    lines = out[out.index(title):].splitlines()[1:]
    rows = []
    for line in lines[2:]:  # header, dashes
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


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
    assert table[0].split() == ["node", "applied", "current", "drift_s", "state", "software/contract", "unsupported",
                                "rejected"]
    rows = [line.split() for line in table[2:]]
    assert [r[0] for r in rows] == ["wl-a", "wl-b", "wl-c"]
    assert all(r[1] == r[2] == version and " ".join(r[4:6]) == "in sync" for r in rows), table
    assert "all processes exited cleanly" in out

    # Imported catalogs: source price, price converted with the CP's FX, masked contact; then re-priced.
    first = {r[0]: r for r in _table_after(out, "imported catalog of wl-b (prices in XPY-B)")}
    assert set(first) == {"wl-a:a-1", "wl-a:a-2", "wl-a:a-3", "wl-c:c-1", "wl-c:c-2"}
    assert first["wl-a:a-2"][2:5] == ["15.50 XPY-A", "19.38 XPY-B", "1.25"]
    assert first["wl-c:c-2"][2:5] == ["45.00 XPY-C", "112.50 XPY-B", "2.5"]
    assert "a***@m***.example" in first["wl-a:a-2"][-1] and "ana.souza@market-a.example" not in out
    after = {r[0]: r for r in _table_after(out, "imported catalog of wl-b\n")}
    assert set(after) == {"wl-a:a-1", "wl-a:a-2", "wl-a:a-3"}  # wl-b/wl-c PAUSED hides wl-c's offers
    assert after["wl-a:a-2"][3:6] == ["20.15 XPY-B", "1.3", "2"]  # FX 1.3, fx_version 2

    # The burst: confirmed orders, completed checkouts, imported units and stock sold agree.
    burst = re.search(r"stock of a-1 25 -> (\d+);", out)
    agree = re.search(r"confirmed at the exporter (\d+) = completed at the importers (\d+) = imported units (\d+) = "
                      r"stock sold (\d+): consistent", out)
    assert burst is not None and agree is not None, out
    confirmed = int(agree.group(1))
    assert len(set(agree.groups())) == 1 and confirmed == 25 - int(burst.group(1)) and 0 < confirmed <= 25

    # Rollout: the pilot's refusals name the stage and the cap, then general admits everyone.
    rollout = out[out.index("10. rollout"):out.index("11. risk")]
    assert "wl-b outsider-9: refused ROLLOUT_NOT_IN_COHORT (cap cohort, stage PILOT)" in rollout
    assert ("wl-b pilot-1: refused ROLLOUT_DAILY_CAP (cap daily_value_cap, headroom 0, limit 31, stage PILOT, "
            "used 31)") in rollout
    assert "promoted: wl-a->wl-b · GENERAL" in rollout and "wl-b outsider-9: bought 1 x a-2" in rollout

    risk = out[out.index("11. risk"):out.index("12. the live SLO report")]
    if "skipped: " not in risk.splitlines()[1]:
        assert "level ALERT" in risk
        assert "DISABLE wl-a -> wl-c (AUTOMATIC)" in risk
        # The plan ranks wl-c's offers as wl-a sees them (digests pushed by wl-c's node): c-1 has the most value.
        assert "wl-c's offers that could cover it, best first:" in risk
        plan = _table_after(risk, "wl-c's offers that could cover it, best first:")
        assert plan[0][:3] == ["1", "wl-c -> wl-a", "c-1"], plan
        assert "x wl-c:c-1 (offer #1 of the plan;" in risk
        assert "wl-c's next checkout is refused" in risk
        assert "ENABLE wl-a -> wl-c" in risk and "wl-c buys again: checkout" in risk
        assert "incremental balances equal the recomputation" in risk

    # The live SLO report after the demo: every figure with its target, per pair for the burst's importers.
    slo = out[out.index("12. the live SLO report"):out.index("stopping")]
    figures = {(r[0], r[1]): r for r in _table_after(slo, "SLO report, last 3600 s")}
    assert {name for name, _ in figures} == {"confirmation_p99", "error_rate", "policy_drift_max", "policy_drift_p99",
                                              "reaction_p99", "events_with_correlation_and_signature"}, slo
    assert all(r[3] in ("0.5 s", "0.005 ratio", "300 s", "60 s", "1 ratio") and r[5] in ("OK", "BREACH")
               for r in figures.values()), slo
    assert ("confirmation_p99", "wl-b/wl-a") in figures and figures[("confirmation_p99", "wl-b/wl-a")][2] != "no data"
    assert figures[("policy_drift_max", "global")][2] != "no data"
    assert "catalog sync lag (importer/exporter, as reported)" in slo
