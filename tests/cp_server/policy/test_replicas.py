"""Two CP replicas on one PostgreSQL database: a change through one reaches streams on the other (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from tests.cp_server.core_harness import RPC_TIMEOUT, running_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import admin_service_pb2 as pb
from xporty.cp.v1 import policy_service_pb2 as ps
from xwl_runtime.identity import Identity


@pytest.mark.postgres
async def test_change_through_one_replica_reaches_a_stream_on_the_other(
    pki: PkiFixture, postgres_db_url: str
) -> None:
    # resync_interval is left at its default (5 s): arriving well within it proves the NOTIFY path.
    async with running_cp(pki, postgres_db_url) as one, running_cp(pki, postgres_db_url) as two:
        await one.register("wl-a", "wl-b")
        stream = (await two.policy(Identity.wl("wl-a"))).WatchPolicies(ps.WatchPoliciesRequest())
        try:
            first = await asyncio.wait_for(stream.read(), timeout=5)
            assert first.WhichOneof("event") == "snapshot"
            admin = await one.admin()
            changed = await admin.UpdatePairPolicy(
                pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", imbalance_limit="42"), timeout=RPC_TIMEOUT)
            loop = asyncio.get_running_loop()
            started = loop.time()
            while True:
                msg = await asyncio.wait_for(stream.read(), timeout=3)
                if msg.WhichOneof("event") == "snapshot" and msg.snapshot.version >= changed.version:
                    break
            assert loop.time() - started < 2.0
            assert msg.snapshot.version == changed.version
            assert [p.imbalance_limit for p in msg.snapshot.pairs] == ["42"]
            # Cut both replicas' LISTEN connections: they reconnect and catch up without waiting for the resync.
            async with await psycopg.AsyncConnection.connect(postgres_db_url, autocommit=True) as admin_conn:
                killed = await (await admin_conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query ILIKE 'LISTEN%xcwl_changes%'")).fetchone()
            assert killed is not None and killed[0] == 2
            later = await admin.UpdatePairPolicy(
                pb.UpdatePairPolicyRequest(wl_a="wl-a", wl_b="wl-b", imbalance_limit="43"), timeout=RPC_TIMEOUT)
            started = loop.time()
            while True:
                msg = await asyncio.wait_for(stream.read(), timeout=5)
                if msg.WhichOneof("event") == "snapshot" and msg.snapshot.version >= later.version:
                    break
            assert loop.time() - started < 3.0
            assert [p.imbalance_limit for p in msg.snapshot.pairs] == ["43"]
            # Versions come from the shared row: the other replica continues the sequence.
            again = await (await two.admin()).UpdateWl(pb.UpdateWlRequest(wl_id="wl-b", name="B"),
                                                       timeout=RPC_TIMEOUT)
            assert again.version == later.version + 1
        finally:
            stream.cancel()
