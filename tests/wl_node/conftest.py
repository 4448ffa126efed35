"""Fixtures for node tests: node settings pointing at a CP, a scripted CP, health checks and polling."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.databases import sqlite_url
from tests.support.eventually import eventually as eventually  # re-exported: tests import it from here
from tests.support.pki import PkiFixture
from tests.wl_node.fake_cp import FakeCp, ScriptedPolicyService, start_fake_cp
from wl_node.settings import NodeSettings
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

WL = "wl-a"
OPS = Identity.ops("tester")


def node_settings(tmp_path: Path, pki: PkiFixture, cp_target: str, **overrides: object) -> NodeSettings:
    """Settings of node ``wl-a`` with its certificate issued, a SQLite store and a short TTL."""
    pki.material(Identity.wl(WL))
    base = NodeSettings(
        wl_id=WL,
        pki_dir=pki.dir.root,
        cp_target=cp_target,
        db_url=sqlite_url(tmp_path, "node"),
        listen="127.0.0.1:0",
        state_dir=tmp_path / "state",
        policy_pull_interval=dt.timedelta(seconds=0.3),
        reconnect_cap=dt.timedelta(seconds=0.3),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def fake_cp(pki: PkiFixture) -> AsyncIterator[FakeCp]:
    cp = await start_fake_cp(pki.material(Identity.cp()), ScriptedPolicyService())
    try:
        yield cp
    finally:
        await cp.stop()


async def health_status(pki: PkiFixture, port: int, service: str = "", wl_id: str = WL) -> int:
    """grpc.health.v1 Check over mTLS as an operator, on the node of ``wl_id``."""
    async with secure_channel(f"127.0.0.1:{port}", pki.material(OPS), expected=Identity.wl(wl_id)) as channel:
        resp = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return resp.status


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def node_dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """One fresh database per process (CP, each node), all of one kind: SQLite or PostgreSQL."""
    from tests.wl_node.catalog.helpers import db_factory

    with db_factory(request.param, tmp_path) as make:
        yield make
