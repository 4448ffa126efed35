"""``xcwl cert import|revoke|list-revoked`` and ``xcwl token-key rotate`` against the e2e stack (real CP and node)."""

from __future__ import annotations

import json

from cryptography import x509

from tests.e2e.conftest import OPERATOR, Stack
from tests.wl_node.conftest import eventually
from tests.xcwl.runner import xcwl
from xwl_runtime.identity import Identity


async def test_import_revoke_list_and_rotate_through_the_cli(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    flags = stack.ops_flags()
    _, cert, _ = stack.pki.files(Identity.wl("wl-b"))  # issued offline: unknown to the CP until imported
    serial = format(x509.load_pem_x509_certificate(cert.read_bytes()).serial_number, "x")

    imported = await xcwl("cert", "import", *flags, str(cert))
    assert imported.returncode == 0, imported.stderr
    assert f"imported: serial {serial} for WL wl-b" in imported.stdout
    again = await xcwl("cert", "import", *flags, "--json", str(cert))
    assert json.loads(again.stdout)["imported"] is False

    revoked = await xcwl("cert", "revoke", *flags, "--serial", serial, "--reason", "lost\x1b[31m laptop\u202e")
    assert revoked.returncode == 2 and "INVALID_ARGUMENT" in revoked.stderr  # control characters refused
    revoked = await xcwl("cert", "revoke", *flags, "--json", "--serial", serial, "--reason", "lost laptop")
    assert revoked.returncode == 0, revoked.stderr
    version = int(json.loads(revoked.stdout)["version"])
    listed = await xcwl("cert", "list-revoked", *flags, "--json")
    assert [(r["serial"], r["wl_id"], r["reason"]) for r in json.loads(listed.stdout)["revoked"]] == [
        (serial, "wl-b", "lost laptop")]
    # The node of wl-a learns it with its next view.
    await eventually(lambda: stack.node.state.version >= version, timeout=10)
    view = stack.node.state.current()
    assert view is not None and [r.serial for r in view.revoked_certificates] == [serial]

    rotated = await xcwl("token-key", "rotate", *flags, "--json")
    assert rotated.returncode == 0, rotated.stderr
    kid = json.loads(rotated.stdout)["current"]["kid"]
    await eventually(lambda: _kids(stack)[:1] == [kid], timeout=10)
    assert len(_kids(stack)) == 2

    human = await xcwl("cert", "list-revoked", *flags)
    assert serial in human.stdout and "lost laptop" in human.stdout


async def test_pki_issue_imports_a_node_certificate_into_the_cp_when_asked(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    stack.ops_flags()  # writes the operator's files
    issued = await xcwl("pki", "issue", "--dir", str(stack.pki.dir.root), "--wl", "wl-c",
                        "--import-to", stack.cp_target, "--as", OPERATOR)
    assert issued.returncode == 0, issued.stderr
    serial = format(x509.load_pem_x509_certificate(stack.pki.dir.cert(Identity.wl("wl-c")).read_bytes())
                    .serial_number, "x")
    assert f"imported into {stack.cp_target}: serial {serial}" in issued.stdout
    async with stack.ops_client() as client:
        again = await client.import_certificate(stack.pki.dir.cert(Identity.wl("wl-c")).read_text())
    assert again.imported is False  # already recorded by the issue command
    refused = await xcwl("pki", "issue", "--dir", str(stack.pki.dir.root), "--ops", "bob",
                         "--import-to", stack.cp_target)
    assert refused.returncode != 0 and "--import-to imports WL node certificates only" in refused.stderr


def _kids(stack: Stack) -> list[str]:
    view = stack.node.state.current()
    return [k.kid for k in view.token_keys] if view is not None else []
