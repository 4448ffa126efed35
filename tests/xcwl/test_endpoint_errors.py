"""One-line errors for a listener address in use and for an endpoint that is the wrong server.

The wrong server is a real WL node (wl-a's exporter) given where the CP or another WL's node is expected: the
pinned handshake refuses it before any request, and the CLI names what is really there.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cp_server.app import build_cp
from cp_server.settings import CpSettings
from tests.support.databases import sqlite_url
from tests.support.pki import PkiFixture
from tests.wl_node.orders.harness import Exporter, start_exporter
from tests.xcwl.runner import xcwl
from xcwl import cli
from xwl_runtime.identity import Identity


@pytest.fixture
async def node_a(pki: PkiFixture, tmp_path: Path) -> AsyncIterator[Exporter]:
    exporter = await start_exporter(pki, sqlite_url(tmp_path, "node-a"), wl_id="wl-a", peers=["wl-b"])
    try:
        yield exporter
    finally:
        await exporter.stop()


async def test_cp_serve_on_a_port_in_use_is_one_line_and_touches_nothing(pki: PkiFixture, tmp_path: Path) -> None:
    pki.material(Identity.cp())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = tmp_path / "cp.db"
        result = await xcwl("cp", "serve", "--pki", str(pki.dir.root), "--db", f"sqlite:///{db}",
                            "--listen", f"127.0.0.1:{port}", "--enroll-listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert result.stderr == f"xcwl: error: --listen: 127.0.0.1:{port} is already in use (another server is " \
                            "listening there; stop it or choose another port)\n"
    assert not db.exists()


async def test_a_node_given_as_cp_to_an_operator_command_is_named(pki: PkiFixture, node_a: Exporter) -> None:
    pki.files(Identity.ops("alice"))
    result = await xcwl("wl", "list", "--cp", node_a.target, "--pki", str(pki.dir.root), "--as", "alice",
                        "--timeout", "3")
    assert result.returncode == 2
    assert result.stderr == (f"xcwl: error: --cp {node_a.target} is the WL node of wl-a, not the CP: give the CP's "
                             "listener\n")


async def test_another_wls_node_given_as_node_is_named(pki: PkiFixture, node_a: Exporter) -> None:
    pki.files(Identity.app("wl-b", "shop"))
    result = await xcwl("catalog", "list", "--node", node_a.target, "--pki", str(pki.dir.root),
                        "--as-app", "wl-b/shop", "--timeout", "3")
    assert result.returncode == 2
    assert result.stderr == (f"xcwl: error: --node {node_a.target} is the WL node of wl-a, not the WL node of "
                             "wl-b: give the WL node of wl-b's listener\n")


async def test_wl_serve_refuses_a_node_given_as_cp(pki: PkiFixture, node_a: Exporter, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    pki.material(Identity.wl("wl-b"))
    db = tmp_path / "node-b.db"
    code = await _main_in_thread(["wl", "serve", "--wl-id", "wl-b", "--pki", str(pki.dir.root),
                                  "--cp", node_a.target, "--db", f"sqlite:///{db}", "--listen", "127.0.0.1:0"])
    assert code == 2
    assert capsys.readouterr().err == (f"xcwl: error: --cp {node_a.target} is the WL node of wl-a, not the CP: "
                                       "give the CP's listener\n")
    assert not db.exists()


async def _main_in_thread(argv: list[str]) -> int:
    """``xcwl`` in this process, off the loop that serves the node it probes."""
    return await asyncio.to_thread(cli.main, argv)


async def test_the_cps_enrollment_listener_given_as_cp_is_named(pki: PkiFixture, tmp_path: Path) -> None:
    pki.files(Identity.ops("alice"))
    cp = await build_cp(CpSettings(db_url=sqlite_url(tmp_path, "cp"), pki_dir=pki.dir.root, listen="127.0.0.1:0",
                                   enroll_listen="127.0.0.1:0"))
    try:
        enroll = f"127.0.0.1:{cp.enroll_port}"
        result = await xcwl("wl", "list", "--cp", enroll, "--pki", str(pki.dir.root), "--as", "alice",
                            "--timeout", "3")
    finally:
        await cp.stop(0)
    assert result.returncode == 2
    assert result.stderr == (f"xcwl: error: --cp {enroll} is the CP's enrollment listener (it does not ask for "
                             "client certificates), not its mTLS listener: give the CP's mTLS listener\n")
