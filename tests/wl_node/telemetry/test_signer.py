"""The node's signer follows a certificate rotation: after ``mark_stale`` the next signature (of an event or of an
operations report) is made with the new key and names the new certificate — never a new key under the old name."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.pki import PkiFixture
from wl_node.telemetry.shipper import _Signer
from xporty.cp.v1 import telemetry_pb2
from xwl_runtime.event_signing import certificate_public_key, certificate_sha256
from xwl_runtime.identity import Identity
from xwl_runtime.tls import TlsMaterial


def test_signatures_follow_the_rotated_certificate(pki: PkiFixture) -> None:
    first = pki.material(Identity.wl("wl-a"))
    pki.dir.issue(Identity.wl("wl-a"))  # a renewal: a new key pair for the same identity
    second = TlsMaterial.from_pki(pki.dir, Identity.wl("wl-a"))
    assert certificate_sha256(first.pair.cert_pem) != certificate_sha256(second.pair.cert_pem)
    loads = [first, second]
    signer = _Signer(lambda: loads.pop(0))

    for material in (first, second):
        signed = signer.sign_bytes(b"report")
        assert signed is not None
        signature, fingerprint = signed
        assert fingerprint == certificate_sha256(material.pair.cert_pem)
        certificate_public_key(material.pair.cert_pem).verify(signature, b"report", ec.ECDSA(hashes.SHA256()))
        [event] = signer.sign_all([telemetry_pb2.LedgerEvent(event_id="e1").SerializeToString()])
        assert event.signer_certificate_sha256 == fingerprint
        signer.mark_stale()  # what the CP channel's rotation listener does
    assert loads == []


def test_without_a_key_nothing_is_signed() -> None:
    signer = _Signer(lambda: None)  # --insecure-dev
    assert signer.sign_bytes(b"report") is None
    assert signer.sign_all([b""])[0].signature == b""
