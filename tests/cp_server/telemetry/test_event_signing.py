"""xwl_runtime.event_signing: what nodes sign and the CP verifies."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.pki import PkiFixture
from xporty.cp.v1 import telemetry_pb2
from xwl_runtime.event_signing import (
    EventSignatureError,
    certificate_public_key,
    certificate_sha256,
    decode,
    sign,
    verify,
)
from xwl_runtime.identity import Identity


def _event() -> telemetry_pb2.LedgerEvent:
    e = telemetry_pb2.LedgerEvent(event_id="e1", wl_id="wl-a", correlation_id="c1", order_id="o1",
                                  kind=telemetry_pb2.LEDGER_EVENT_KIND_EXPORT_CONFIRMED)
    e.amount.amount = "10.00"
    return e


def test_sign_and_verify_round_trip(pki: PkiFixture) -> None:
    m = pki.material(Identity.wl("wl-a"))
    signed = sign(_event(), m.pair.key_pem, m.pair.cert_pem)
    der = x509.load_pem_x509_certificate(m.pair.cert_pem).public_bytes(serialization.Encoding.DER)
    assert signed.signer_certificate_sha256 == hashlib.sha256(der).hexdigest() == certificate_sha256(m.pair.cert_pem)
    assert verify(signed, certificate_public_key(m.pair.cert_pem)) == _event()


def test_tampered_payload_other_key_and_unsigned_fail(pki: PkiFixture) -> None:
    a = pki.material(Identity.wl("wl-a"))
    b = pki.material(Identity.wl("wl-b"))
    signed = sign(_event(), a.pair.key_pem, a.pair.cert_pem)
    with pytest.raises(EventSignatureError) as err:
        verify(signed, certificate_public_key(b.pair.cert_pem))
    assert err.value.reason == "BAD_SIGNATURE"
    tampered = telemetry_pb2.SignedEvent()
    tampered.CopyFrom(signed)
    tampered.payload = signed.payload.replace(b"10.00", b"99.00")
    with pytest.raises(EventSignatureError) as err:
        verify(tampered, certificate_public_key(a.pair.cert_pem))
    assert err.value.reason == "BAD_SIGNATURE"
    tampered.signature = b""
    with pytest.raises(EventSignatureError) as err:
        verify(tampered, certificate_public_key(a.pair.cert_pem))
    assert err.value.reason == "UNSIGNED"


def test_garbage_payload_is_bad_payload() -> None:
    with pytest.raises(EventSignatureError) as err:
        decode(telemetry_pb2.SignedEvent(payload=b"\xff\xff\xff"))
    assert err.value.reason == "BAD_PAYLOAD"
