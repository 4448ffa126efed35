"""A whole deployment in miniature for end-to-end tests: a real CP and a real WL node (in this process, real
mTLS on port 0, the production pipeline), driven from the outside with grpcurl and the ``xcwl`` CLI."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from cp_server.app import CpApp, build_cp
from cp_server.settings import CpSettings
from tests.support.databases import sqlite_url
from tests.support.pki import PkiFixture
from tests.support.trust import import_wls
from tests.wl_node.conftest import eventually
from wl_node.app import NodeApp, build_node
from wl_node.settings import NodeSettings
from xcwl.ops_client import OpsClient
from xporty.cp.v1 import admin_service_pb2, policy_pb2, registry_pb2
from xwl_runtime.identity import Identity

OPERATOR = "alice"


@dataclass
class Stack:
    pki: PkiFixture
    cp: CpApp
    node: NodeApp

    @property
    def cp_target(self) -> str:
        return f"127.0.0.1:{self.cp.port}"

    @property
    def node_target(self) -> str:
        return f"127.0.0.1:{self.node.port}"

    def ops_files(self) -> tuple[Path, Path, Path]:
        return self.pki.files(Identity.ops(OPERATOR))

    def ops_flags(self) -> list[str]:
        """The CLI's common operator flags for this stack."""
        self.ops_files()
        return ["--cp", self.cp_target, "--pki", str(self.pki.dir.root), "--as", OPERATOR]

    def ops_client(self) -> AbstractAsyncContextManager[OpsClient]:
        """The operator's typed client, in this process."""
        return OpsClient.connect(self.cp_target, self.pki.material(Identity.ops(OPERATOR)), timeout=10)


async def _seed(stack_cp_target: str, pki: PkiFixture) -> None:
    async with OpsClient.connect(stack_cp_target, pki.material(Identity.ops(OPERATOR)), timeout=10) as client:
        for wl_id in ("wl-a", "wl-b"):
            await client.register_wl(registry_pb2.WhiteLabel(
                wl_id=wl_id, name=f"Market {wl_id}", currency=f"XPY-{wl_id[-1].upper()}", currency_decimals=2,
                reference_rate="1", trader_endpoint="127.0.0.1:9"))
        await client.update_pair(admin_service_pb2.UpdatePairPolicyRequest(
            wl_a="wl-a", wl_b="wl-b", status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, fx_rate="2",
            imbalance_limit="1000", reason="e2e seed"))


@asynccontextmanager
async def running_stack(pki: PkiFixture, db_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """CP on ``db_url`` with wl-a and wl-b registered and paired (FX 2), and node wl-a following it."""
    cp = await build_cp(CpSettings(db_url=db_url, pki_dir=pki.dir.root, listen="127.0.0.1:0",
                                   enroll_listen="127.0.0.1:0", heartbeat_interval=dt.timedelta(seconds=30)))
    node = None
    try:
        await _seed(f"127.0.0.1:{cp.port}", pki)
        # Offline-issued node certificate (enrollment has its own tests), recorded as an operator would.
        await import_wls(cp, pki, "wl-a")
        node = await build_node(NodeSettings(
            wl_id="wl-a", pki_dir=pki.dir.root, cp_target=f"127.0.0.1:{cp.port}",
            db_url=sqlite_url(tmp_path, "node"), listen="127.0.0.1:0", state_dir=tmp_path / "state"))
        await eventually(lambda: node is not None and node.state.version == cp.hub.version, timeout=10)
        yield Stack(pki, cp, node)
    finally:
        if node is not None:
            await node.stop(0)
        await cp.stop(0)


@pytest.fixture
async def stack(pki: PkiFixture, db_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """The stack on SQLite and on PostgreSQL (for tests whose outcome depends on the store)."""
    async with running_stack(pki, db_url, tmp_path) as running:
        yield running


@pytest.fixture
async def sqlite_stack(pki: PkiFixture, tmp_path: Path) -> AsyncIterator[Stack]:
    """The stack on SQLite only (transport-level tests: reflection, health, not-modified)."""
    async with running_stack(pki, sqlite_url(tmp_path, "cp"), tmp_path) as running:
        yield running
