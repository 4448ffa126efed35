"""From the outside, as an operator: grpcurl over mTLS (reflection, health, WatchPolicies) and the ``xcwl`` CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cp_server.app import build_cp
from cp_server.settings import CpSettings
from tests.e2e.conftest import Stack
from tests.support import grpcurl
from tests.support.databases import sqlite_url
from tests.support.pki import make_test_pki
from tests.xcwl.runner import xcwl
from xwl_runtime.identity import Identity, pinned_name

WATCH_MAX_TIME_S = 8
WL_A = Identity.wl("wl-a")
CP = Identity.cp()


# grpcurl prints proto field names (fx_rate) and accepts JSON names (wlId) as well as proto names in -d.


def _tls(stack: Stack, expected: Identity = CP) -> list[str]:
    """grpcurl's TLS flags as an operator, pinning the identity the server must prove."""
    return grpcurl.tls_args(*stack.ops_files(), servername=pinned_name(expected))


async def test_grpcurl_lists_services_and_gets_serving_on_cp_and_node(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    cp_list = await grpcurl.arun([*_tls(stack), stack.cp_target, "list"])
    assert cp_list.returncode == 0, cp_list.stderr
    services = set(cp_list.stdout.split())
    assert {"xporty.cp.v1.AdminService", "xporty.cp.v1.PolicyService", "xporty.cp.v1.IdentityService",
            "grpc.health.v1.Health"} <= services

    described = await grpcurl.arun([*_tls(stack), stack.cp_target, "describe", "xporty.cp.v1.PolicyService"])
    assert described.returncode == 0, described.stderr
    assert "rpc WatchPolicies" in described.stdout

    node_list = await grpcurl.arun([*_tls(stack, WL_A), stack.node_target, "list"])
    assert node_list.returncode == 0, node_list.stderr
    assert "grpc.health.v1.Health" in node_list.stdout.split()
    # Expecting the CP on the node's address: the node's genuine certificate does not prove it.
    impostor = await grpcurl.arun([*_tls(stack), stack.node_target, "list"])
    assert impostor.returncode != 0 and "cp.xporty.internal" in impostor.stderr

    for target, expected in ((stack.cp_target, Identity.cp()), (stack.node_target, WL_A)):
        health = await grpcurl.arun([*_tls(stack, expected), target, "grpc.health.v1.Health/Check"])
        assert health.returncode == 0, health.stderr
        assert json.loads(health.stdout) == {"status": "SERVING"}


async def _read_until(proc: asyncio.subprocess.Process, buf: bytes, done: Callable[[list[dict[str, Any]]], bool]
                      ) -> bytes:
    """Read grpcurl's stdout (appending to ``buf``) until the messages parsed so far satisfy ``done``."""
    assert proc.stdout is not None
    while True:
        try:
            if done(grpcurl.parse_stream(buf.decode())):
                return buf
        except json.JSONDecodeError:
            pass  # half a message so far
        chunk = await asyncio.wait_for(proc.stdout.read(4096), timeout=WATCH_MAX_TIME_S)
        assert chunk, f"grpcurl ended early; got {buf.decode()!r}"
        buf += chunk


def _snapshots(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["snapshot"] for m in messages if "snapshot" in m]


async def test_grpcurl_watch_receives_a_new_snapshot_after_xcwl_policy_set(stack: Stack) -> None:
    before = stack.cp.hub.version
    proc = await asyncio.create_subprocess_exec(
        grpcurl.grpcurl_path(), *_tls(stack), "-max-time", str(WATCH_MAX_TIME_S), "-d", '{"wlId":"wl-a"}',
        stack.cp_target, "xporty.cp.v1.PolicyService/WatchPolicies",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        buf = await _read_until(proc, b"", lambda msgs: bool(_snapshots(msgs)))  # the snapshot sent on connect
        changed = await xcwl("policy", "set", *stack.ops_flags(), "--a", "wl-a", "--b", "wl-b", "--fx", "2.1",
                             "--json")
        assert changed.returncode == 0, changed.stderr
        new_version = int(json.loads(changed.stdout)["version"])
        assert new_version > before
        buf = await _read_until(proc, buf, lambda msgs: len(_snapshots(msgs)) >= 2)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    snapshots = _snapshots(grpcurl.parse_stream(buf.decode()))
    assert int(snapshots[0]["version"]) == before
    assert snapshots[0]["pairs"][0]["fx_rate"] == "2"
    assert int(snapshots[1]["version"]) == new_version
    assert snapshots[1]["pairs"][0]["fx_rate"] == "2.1"
    assert snapshots[1]["wl_id"] == "wl-a"


async def test_grpcurl_get_policies_answers_not_modified_for_the_current_version(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    version = stack.cp.hub.version
    req = json.dumps({"wlId": "wl-a", "knownVersion": str(version)})
    result = await grpcurl.arun([*_tls(stack), "-d", req, stack.cp_target, "xporty.cp.v1.PolicyService/GetPolicies"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"not_modified": True, "version": str(version)}


async def test_a_wl_certificate_used_as_operator_is_refused_and_changes_nothing(stack: Stack) -> None:
    _, cert, key = stack.pki.files(Identity.wl("wl-a"))
    before = stack.cp.hub.version
    refused = await xcwl("policy", "set", *stack.ops_flags(), "--cert", str(cert), "--key", str(key),
                         "--a", "wl-a", "--b", "wl-b", "--status", "BLOCKED")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith("xcwl: error: PERMISSION_DENIED: spiffe://xporty/wl/wl-a may not call")
    assert lines[0].endswith("(reason IDENTITY_NOT_ALLOWED)")
    assert refused.stdout == ""
    assert stack.cp.hub.version == before
    async with stack.ops_client() as client:
        assert (await client.get_pair("wl-a", "wl-b")).status == 1  # still ACTIVE


async def test_operator_flow_through_the_cli(stack: Stack) -> None:
    """wl add with a token, direction flags, node status showing the node in sync, audit verify."""
    flags = stack.ops_flags()
    added = await xcwl("wl", "add", *flags, "--id", "wl-c", "--name", "Market C", "--currency", "XPY-C",
                       "--reference-rate", "2", "--endpoint", "127.0.0.1:9", "--dns", "trader.wl-c.example",
                       "--bootstrap-token", "--json")
    assert added.returncode == 0, added.stderr
    doc = json.loads(added.stdout)
    assert doc["white_label"]["currency"] == "XPY-C"
    assert doc["white_label"]["dns_names"] == ["trader.wl-c.example"]
    assert len(doc["bootstrap_token"]) >= 20
    # A name that would let wl-c pose as the CP is refused, naming the field; nothing changes.
    posing = await xcwl("wl", "update", *flags, "--id", "wl-c", "--dns", "cp.xporty.internal")
    assert posing.returncode == 2 and "INVALID_ARGUMENT" in posing.stderr and "dns_names" in posing.stderr
    replaced = await xcwl("wl", "update", *flags, "--id", "wl-c", "--dns", "wl-c.partner.example", "--json")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["white_label"]["dns_names"] == ["wl-c.partner.example"]

    direction = await xcwl("policy", "direction", *flags, "--exporter", "wl-b", "--importer", "wl-a",
                           "--import-enabled", "on", "--visible", "on", "--export-delay", "60")
    assert direction.returncode == 0, direction.stderr
    assert "wl-b      wl-a      on              on       60" in direction.stdout
    version = stack.cp.hub.version

    async def node_in_sync() -> bool:
        status = await xcwl("policy", "status", *flags, "--json")
        assert status.returncode == 0, status.stderr
        nodes = {n["wl_id"]: n for n in json.loads(status.stdout)["nodes"]}
        return int(nodes["wl-a"]["applied_version"]) == version == int(nodes["wl-a"]["current_version"])

    for _ in range(50):
        if await node_in_sync():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("node wl-a never reported the current version")

    bad = await xcwl("policy", "set", *flags, "--a", "wl-a", "--b", "wl-b", "--fx", "-1")
    assert bad.returncode == 2
    assert "INVALID_ARGUMENT" in bad.stderr and "fx_rate" in bad.stderr
    verified = await xcwl("audit", "verify", *flags)
    assert verified.returncode == 0, verified.stderr
    assert "audit log OK" in verified.stdout


async def test_cli_talks_plaintext_to_an_insecure_dev_cp(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki")  # the CP still needs its CA (enrollment, JWT key), not TLS
    cp = await build_cp(CpSettings(db_url=sqlite_url(tmp_path, "cp"), pki_dir=pki.dir.root, listen="127.0.0.1:0",
                                   enroll_listen="127.0.0.1:0", insecure_dev=True))
    try:
        env = {"XCWL_CP": f"127.0.0.1:{cp.port}", "XCWL_INSECURE_DEV": "1", "XCWL_AS": "dev"}
        added = await xcwl("wl", "add", "--id", "wl-a", "--name", "A", "--currency", "XPY-A", "--endpoint", "h:1",
                           env=env)
        assert added.returncode == 0, added.stderr
        listed = await xcwl("wl", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert [w["wl_id"] for w in json.loads(listed.stdout)["white_labels"]] == ["wl-a"]
        audit = await xcwl("audit", "list", "--json", env=env)
        assert json.loads(audit.stdout)["records"][0]["actor"] == "spiffe://xporty/ops/dev"
    finally:
        await cp.stop(0)
