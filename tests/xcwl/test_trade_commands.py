"""The trade and risk commands against a real CP and real nodes (in this process, real mTLS, production pipeline):
``offer publish|withdraw`` and ``catalog list`` as WL apps, ``checkout buy``, ``report balance``, ``signal send``
and ``risk check``. Commands run through ``xcwl.cli.main`` in a worker thread (its own event loop, as the console
script runs it) and, once, as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from cp_server.risk import tables as risk_tables
from tests.support.databases import sqlite_url
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import EMAIL, PHONE
from tests.wl_node.conftest import eventually
from tests.wl_node.test_cross_wl_trade import World, world
from tests.xcwl.runner import xcwl
from xcwl import cli
from xwl_runtime.db import create_engine
from xwl_runtime.identity import Identity

OPERATOR = "alice"


@pytest.fixture
async def trade(tmp_path: Path, pki: PkiFixture) -> AsyncIterator[World]:
    """CP + exporter wl-a + importer wl-b on SQLite (FX 2 from wl-a to wl-b), certificates for the CLI's callers."""
    async with world(tmp_path, pki, lambda name: sqlite_url(tmp_path, name), ["wl-b"]) as w:
        for identity in (Identity.app("wl-a", "shop"), Identity.app("wl-b", "shop"), Identity.ops(OPERATOR)):
            pki.files(identity)
        yield w


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``xcwl ARGV`` in a worker thread; (exit code, stdout, stderr)."""
    capsys.readouterr()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # cli.main configures logging for a whole process: undo it
    try:
        code = await asyncio.to_thread(cli.main, list(argv))
    finally:
        root.handlers[:], root.level = handlers, level
    out = capsys.readouterr()
    return code, out.out, out.err


def node(w: World, wl_id: str, app: str = "shop") -> list[str]:
    return ["--node", f"127.0.0.1:{w.nodes[wl_id].port}", "--pki", str(w.pki.dir.root), "--as-app", f"{wl_id}/{app}"]


def ops(w: World) -> list[str]:
    return ["--cp", f"127.0.0.1:{w.cp.port}", "--pki", str(w.pki.dir.root), "--as", OPERATOR]


PUBLISH = ["--id", "o-1", "--title", "Blue kettle", "--category", "home", "--price", "12.50", "--currency", "XPY-A",
           "--stock", "5", "--manager-name", "Joana Silva", "--manager-email", EMAIL, "--manager-phone", PHONE]


async def imported(capsys: pytest.CaptureFixture[str], w: World, *filters: str) -> list[dict[str, object]]:
    code, out, err = await run(capsys, "catalog", "list", *node(w, "wl-b"), *filters, "--json")
    assert code == 0, err
    offers: list[dict[str, object]] = json.loads(out)["offers"]
    return offers


async def test_publish_then_the_importer_lists_it_converted_and_masked_then_withdraw_hides_it(
    trade: World, capsys: pytest.CaptureFixture[str]
) -> None:
    w = trade
    code, out, err = await run(capsys, "offer", "publish", *node(w, "wl-a"), *PUBLISH)
    assert code == 0, err
    assert "published offer wl-a:o-1" in out and "12.50 XPY-A x 5" in out

    found: list[dict[str, object]] = []

    async def listed() -> bool:
        found[:] = await imported(capsys, w)
        return bool(found)

    await eventually(listed, timeout=20)
    offer = found[0]
    assert offer["imported_offer_id"] == "wl-a:o-1"
    assert offer["source_price"] == {"currency": "XPY-A", "amount": "12.50"}
    assert offer["price"] == {"currency": "XPY-B", "amount": "25.00"}  # FX 2, the CP's rate
    assert offer["fx_rate"] == "2"
    manager = json.dumps(offer["manager"])
    assert EMAIL not in manager and PHONE not in manager and "***" in manager  # masked by default

    code, out, _ = await run(capsys, "catalog", "list", *node(w, "wl-b"))
    assert code == 0
    assert "1 imported offer(s)" in out and "12.50 XPY-A" in out and "25.00 XPY-B" in out and EMAIL not in out
    assert await imported(capsys, w, "--category", "garden") == []
    assert len(await imported(capsys, w, "--text", "KETTLE", "--source-wl", "wl-a")) == 1

    code, out, err = await run(capsys, "offer", "withdraw", *node(w, "wl-a"), "--id", "o-1")
    assert code == 0, err

    async def gone() -> bool:
        return await imported(capsys, w) == []

    await eventually(gone, timeout=20)


async def test_refusals_are_one_line_and_exit_2(trade: World, capsys: pytest.CaptureFixture[str]) -> None:
    w = trade
    bad_price = [*PUBLISH]
    bad_price[bad_price.index("12.50")] = "12.505"
    code, _, err = await run(capsys, "offer", "publish", *node(w, "wl-a"), *bad_price)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("xcwl: error: INVALID_ARGUMENT") and "unit_price" in err

    # wl-b's app dialling wl-a's node: the client expects wl-b's node and refuses the handshake ...
    code, _, err = await run(capsys, "offer", "publish", "--node", f"127.0.0.1:{w.nodes['wl-a'].port}",
                             "--pki", str(w.pki.dir.root), "--as-app", "wl-b/shop", *PUBLISH)
    assert code == 2
    port = w.nodes["wl-a"].port
    assert err == (f"xcwl: error: --node 127.0.0.1:{port} is the WL node of wl-a, not the WL node of wl-b: give the "
                   "WL node of wl-b's listener\n")
    # ... and told to expect wl-a, reaches it, where the node serves only its own WL's apps.
    code, _, err = await run(capsys, "offer", "publish", "--node", f"127.0.0.1:{w.nodes['wl-a'].port}",
                             "--node-wl", "wl-a", "--pki", str(w.pki.dir.root), "--as-app", "wl-b/shop", *PUBLISH)
    assert code == 2
    assert err.startswith("xcwl: error: PERMISSION_DENIED") and "NOT_THIS_WL" in err

    code, _, err = await run(capsys, "catalog", "list", *node(w, "wl-b", app="nobody"))
    assert code == 2 and "app-wl-b-nobody.crt" in err and "xcwl pki issue" in err

    code, _, err = await run(capsys, "catalog", "list", "--node", f"127.0.0.1:{w.nodes['wl-b'].port}",
                             "--pki", str(w.pki.dir.root), "--as-app", "no-slash")
    assert code == 2 and "expected WL/NAME" in err

    code, _, err = await run(capsys, "signal", "send", *ops(w), "--kind", "disable", "--exporter", "wl-a",
                             "--importer", "wl-zz", "--reason", "test")
    assert code == 2 and err.count("\n") == 1 and err.startswith("xcwl: error: ")


async def test_checkout_report_signal_and_risk_check(
    trade: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    w = trade
    assert (await run(capsys, "offer", "publish", *node(w, "wl-a"), *PUBLISH))[0] == 0

    async def bought() -> bool:
        code, out, _ = await run(capsys, "checkout", "buy", *node(w, "wl-b"), "--offer", "wl-a:o-1",
                                 "--quantity", "2", "--buyer", "m-1", "--idempotency-key", "k-1", "--json")
        return code == 0 and json.loads(out)["checkout"]["status"] == "CHECKOUT_STATUS_COMPLETED"

    await eventually(bought, timeout=20)  # refused (exit 2) until the offer is imported and a token is held
    code, out, _ = await run(capsys, "checkout", "buy", *node(w, "wl-b"), "--offer", "wl-a:o-1", "--quantity", "2",
                             "--buyer", "m-1", "--idempotency-key", "k-1")
    assert code == 0 and "COMPLETED 2 x wl-a:o-1 total 50.00 XPY-B" in out  # the replay: same checkout
    code, out, _ = await run(capsys, "checkout", "buy", *node(w, "wl-b"), "--offer", "wl-a:o-1", "--quantity", "9",
                             "--buyer", "m-2")
    assert code == 1 and "FAILED" in out and "OUT_OF_STOCK" in out  # a decided failure: exit 1

    code, out, err = await run(capsys, "signal", "send", *ops(w), "--kind", "disable", "--exporter", "wl-a",
                               "--importer", "wl-b", "--reason", "ops drill")
    assert code == 0, err
    assert "DISABLE wl-a -> wl-b (OPERATOR): ops drill" in out

    code, out, err = await run(capsys, "report", "balance", *ops(w), "--json")
    assert code == 0, err
    report = json.loads(out)
    pair = next(b for b in report["balances"] if (b["wl_a"], b["wl_b"]) == ("wl-a", "wl-b"))
    assert Decimal(pair["limit"]) == Decimal(1000000)
    assert [(s["kind"], s["source"], s["reason"]) for s in report["signals"]] == [
        ("SIGNAL_KIND_DISABLE", "SIGNAL_SOURCE_OPERATOR", "ops drill")]
    code, out, _ = await run(capsys, "report", "balance", *ops(w))
    assert code == 0 and "balances (reference unit)" in out and "DISABLE" in out and "wl-a -> wl-b" in out

    code, out, _ = await run(capsys, "signal", "send", *ops(w), "--kind", "enable", "--exporter", "wl-a",
                             "--importer", "wl-b", "--reason", "drill over")
    assert code == 0 and "ENABLE wl-a -> wl-b" in out

    cp_db = sqlite_url(tmp_path, "cp")
    code, out, _ = await run(capsys, "risk", "check", "--db", cp_db)
    assert (code, out.strip()) == (0, "balances consistent with stored events")
    # Tamper with the incremental balance: the recomputation from the stored events disagrees.
    engine = create_engine(cp_db)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.update(risk_tables.balances).values(exports_ab="999"))
    finally:
        await engine.dispose()
    code, out, _ = await run(capsys, "risk", "check", "--db", cp_db, "--json")
    assert code == 1
    result = json.loads(out)
    assert result["consistent"] is False
    assert result["mismatches"][0]["stored_exports_a_to_b"] == "999"


async def test_console_script_reports_an_unreachable_node_in_one_line(pki: PkiFixture) -> None:
    pki.files(Identity.app("wl-a", "shop"))
    result = await xcwl("catalog", "list", "--node", "127.0.0.1:1", "--pki", str(pki.dir.root),
                        "--as-app", "wl-a/shop", "--timeout", "1")
    assert result.returncode == 2
    err = result.stderr.strip()
    assert err.count("\n") == 0
    assert err.startswith("xcwl: error: UNAVAILABLE") or err.startswith("xcwl: error: DEADLINE_EXCEEDED"), err
