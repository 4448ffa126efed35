"""Node side of enrollment against a real CP: files written atomically, reused on restart, clear failures."""

from __future__ import annotations

import datetime as dt
import shutil
import stat
from pathlib import Path

import pytest
from cryptography import x509

from tests.cp_server.identity.harness import IdentityCp
from tests.cp_server.identity.rpc import mtls_stub
from wl_node.identity import EnrollmentError, enroll, load_or_enroll
from wl_node.identity.files import key_matches_certificate, recover_pending, write_pair
from wl_node.settings import NodeSettings
from xporty.cp.v1 import identity_service_pb2 as pb
from xwl_runtime.identity import Identity, identity_of_certificate
from xwl_runtime.pki import PkiDir
from xwl_runtime.tls import KeyPair

WL_A = Identity.wl("wl-a")


def node_pki(cp: IdentityCp, root: Path) -> PkiDir:
    """A node's PKI directory as provisioned out of band: the CA certificate only."""
    root.mkdir(parents=True)
    shutil.copy(cp.pki.dir.ca_cert, root / "ca.crt")
    return PkiDir(root)


def settings(pki: PkiDir, cp: IdentityCp, token: str = "") -> NodeSettings:
    return NodeSettings(wl_id="wl-a", pki_dir=pki.root, cp_target=cp.mtls_target, db_url="sqlite:///unused.db",
                        cp_enroll_target=cp.enroll_target, bootstrap_token=token)


async def test_first_start_enrolls_and_restart_reuses_the_certificate(identity_cp: IdentityCp, tmp_path: Path) -> None:
    pki = node_pki(identity_cp, tmp_path / "node")
    token = await identity_cp.token_for("wl-a")

    material = await load_or_enroll(settings(pki, identity_cp, token))

    cert = x509.load_pem_x509_certificate(material.pair.cert_pem)
    assert identity_of_certificate(cert) == WL_A
    assert pki.cert(WL_A).read_bytes() == material.pair.cert_pem
    assert pki.key(WL_A).read_bytes() == material.pair.key_pem
    assert stat.S_IMODE(pki.key(WL_A).stat().st_mode) == 0o600
    assert not list(pki.root.glob("*.next")) and not list(pki.root.glob("*.tmp"))
    async with mtls_stub(identity_cp.mtls_target, material) as stub:  # the new identity works over mTLS
        assert len((await stub.GetJwks(pb.GetJwksRequest(), timeout=10)).keys) == 1

    # A restart (same token, already spent) loads the files and does not contact the CP.
    again = await load_or_enroll(settings(pki, identity_cp, token))
    assert again == material
    assert len(await identity_cp.audit_entries()) == 1


async def test_spent_token_fails_with_an_actionable_error(identity_cp: IdentityCp, tmp_path: Path) -> None:
    token = await identity_cp.token_for("wl-a")
    await enroll(node_pki(identity_cp, tmp_path / "first"), "wl-a", identity_cp.enroll_target, token)
    second = node_pki(identity_cp, tmp_path / "second")

    with pytest.raises(EnrollmentError, match="ask an operator for a new one"):
        await enroll(second, "wl-a", identity_cp.enroll_target, token)
    assert not second.has(WL_A)


async def test_missing_token_or_ca_is_refused_before_any_call(identity_cp: IdentityCp, tmp_path: Path) -> None:
    pki = node_pki(identity_cp, tmp_path / "node")
    with pytest.raises(EnrollmentError, match="bootstrap token"):
        await load_or_enroll(settings(pki, identity_cp))
    bare = PkiDir(tmp_path / "bare")
    with pytest.raises(EnrollmentError, match="ca.crt is missing"):
        await enroll(bare, "wl-a", identity_cp.enroll_target, await identity_cp.token_for("wl-a"))
    assert await identity_cp.audit_entries() == []


async def test_expired_certificate_triggers_a_new_enrollment(identity_cp: IdentityCp, tmp_path: Path) -> None:
    pki = node_pki(identity_cp, tmp_path / "node")
    first = await enroll(pki, "wl-a", identity_cp.enroll_target, await identity_cp.token_for("wl-a"))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)

    fresh = await load_or_enroll(settings(pki, identity_cp, await identity_cp.token_for("wl-a")), now=later)

    assert fresh.pair != first.pair
    with pytest.raises(EnrollmentError, match="bootstrap token"):
        await load_or_enroll(settings(pki, identity_cp), now=later + dt.timedelta(days=2))


def test_interrupted_pair_write_is_completed_or_discarded(tmp_path: Path) -> None:
    pki = PkiDir(tmp_path)
    ca = pki.init_ca()
    old = ca.issue(WL_A)
    new = ca.issue(WL_A)
    write_pair(pki, WL_A, KeyPair(old.cert_pem, old.key_pem))
    # Crash after the key was renamed but before the certificate was: the staged certificate completes it.
    (tmp_path / "wl-wl-a.crt.next").write_bytes(new.cert_pem)
    (tmp_path / "wl-wl-a.key").write_bytes(new.key_pem)
    recover_pending(pki, WL_A)
    assert pki.cert(WL_A).read_bytes() == new.cert_pem
    assert key_matches_certificate(pki.key(WL_A).read_bytes(), pki.cert(WL_A).read_bytes())

    # Crash while staging (only the key staged): the live pair stays and the leftover goes.
    (tmp_path / "wl-wl-a.key.next").write_bytes(old.key_pem)
    recover_pending(pki, WL_A)
    assert not (tmp_path / "wl-wl-a.key.next").exists()
    assert pki.key(WL_A).read_bytes() == new.key_pem
