"""The TypeScript example WL service (examples/typescript, generated/ts stubs, grpc-js) against live nodes over mTLS,
and a grpc-js client that loads only proto/ decoding the ErrorInfo reason of a refused checkout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from tests.e2e.conftest import running_stack
from tests.examples import typescript
from tests.support.databases import sqlite_url
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import db_factory
from tests.wl_node.conftest import OPS
from tests.wl_node.test_cross_wl_trade import _publish, _ready_to_buy, _stock, world
from wl_node.checkout.tables import checkouts as checkouts_table
from xcwl.ops_client import OpsClient
from xporty.cp.v1 import signal_pb2, signal_service_pb2
from xwl_runtime.identity import Identity

ROOT = Path(__file__).resolve().parents[2]
IMPORTER = "wl-b"


async def test_typescript_example_runs_every_call_against_live_nodes(tmp_path: Path, pki: PkiFixture) -> None:
    typescript.build()
    with db_factory("sqlite", tmp_path) as dbs:
        async with world(tmp_path, pki, dbs, [IMPORTER]) as w:
            await _publish(w, "o-1", "12.50", 5)
            await _ready_to_buy(w, IMPORTER, "wl-a:o-1")
            proc = await typescript.start("main.js", typescript.app_env(
                pki, w.nodes[IMPORTER].port, Identity.app(IMPORTER, "shop-ts"), XCWL_BUY="wl-a:o-1",
                XCWL_OFFER_ID="ts-chair", XCWL_CURRENCY="XPY-B", XCWL_WAIT_SIGNAL="1"))
            try:
                pairs = await typescript.read_step(proc)
                assert pairs["step"] == "pairs"
                assert {"wlA": "wl-a", "wlB": IMPORTER, "fxRate": "2"} in pairs["pairs"]

                published = await typescript.read_step(proc)
                assert published == {"step": "published", "offerId": "ts-chair", "exporterWl": IMPORTER}

                catalog = await typescript.read_step(proc)
                assert "wl-a:o-1" in catalog["imported"]

                checkout = await typescript.read_step(proc)
                assert checkout["status"] == "CHECKOUT_STATUS_COMPLETED"
                assert checkout["total"] == {"currency": "XPY-B", "amount": "25.00"}
                assert checkout["duplicateCheckoutId"] == checkout["checkoutId"]
                assert await _stock(w, "o-1") == 4  # the retried duplicate bought nothing more

                refused = await typescript.read_step(proc)
                assert refused["code"] == "INVALID_ARGUMENT"
                assert refused["reason"] == "IDEMPOTENCY_KEY_REUSED" and refused["knownReason"] is True
                assert await _stock(w, "o-1") == 4

                assert (await typescript.read_step(proc))["step"] == "waiting-signal"
                async with OpsClient.connect(f"127.0.0.1:{w.cp.port}", pki.material(OPS), timeout=10) as ops:
                    await ops.send_signal(signal_service_pb2.SendSignalRequest(
                        kind=signal_pb2.SIGNAL_KIND_DISABLE, exporter_wl="wl-a", importer_wl=IMPORTER,
                        reason="ts example"))
                signal = await typescript.read_step(proc)
                assert signal == {"step": "signal", "kind": "PAIR_SIGNAL_KIND_DIRECTION_DISABLED",
                                  "exporterWl": "wl-a", "importerWl": IMPORTER, "reason": "ts example"}
                assert await asyncio.wait_for(proc.wait(), 20) == 0
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


async def test_a_proto_loader_client_decodes_the_reason_of_a_refused_checkout(tmp_path: Path, pki: PkiFixture
                                                                               ) -> None:
    typescript.build()
    async with running_stack(pki, sqlite_url(tmp_path, "cp"), tmp_path) as stack:
        proc = await typescript.start("proto_loader_error.js", typescript.app_env(
            pki, stack.node.port, Identity.app("wl-a", "shop-js"), XCWL_PROTO=str(ROOT / "proto"),
            XCWL_BUY="wl-b:no-such-offer"))
        try:
            out = await typescript.read_step(proc)
        finally:
            if proc.returncode is None:
                await asyncio.wait_for(proc.wait(), 20)
        assert out == {"refused": True, "code": "NOT_FOUND", "statusCode": 5, "reason": "OFFER_NOT_FOUND",
                       "domain": "xporty", "metadata": {}}
        async with stack.node.engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(checkouts_table))).scalar_one() == 0
