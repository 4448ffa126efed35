"""PublishEvents: signature, signer and caller checks, dedupe, counters — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import sqlalchemy as sa

from cp_server.risk import tables as t
from tests.cp_server.identity.rpc import refused
from tests.cp_server.risk.harness import KIND, RiskCp, running_risk_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import analytics_service_pb2, telemetry_pb2, telemetry_service_pb2
from xwl_runtime.identity import Identity

WLS = {"wl-a": ("XPY-A", "1"), "wl-b": ("XPY-B", "0.5"), "wl-c": ("XPY-C", "2")}


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[RiskCp]:
    async with running_risk_cp(pki, db_url) as cp:
        await cp.seed(WLS, [("wl-a", "wl-b", "1000"), ("wl-a", "wl-c", "1000")])
        cp.honest_importers = False  # these tests count exactly the events they send
        yield cp


async def _counters(cp: RiskCp) -> dict[tuple[str, str], int]:
    c = t.ingest_counters
    async with cp.engine.connect() as conn:
        return {(r.wl_id, r.reason): int(r.count) for r in (await conn.execute(sa.select(c))).all()}


async def _stored_ids(cp: RiskCp) -> set[str]:
    async with cp.engine.connect() as conn:
        return set((await conn.execute(sa.select(t.events.c.event_id))).scalars())


def _export(node, order: str = "o1", amount: str = "10", **kw):  # type: ignore[no-untyped-def]
    return node.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id=order, exporter=node.wl_id,
                      importer="wl-b", amount=amount, currency="XPY-A", **kw)


async def test_signed_event_is_stored_with_reference_value(cp: RiskCp) -> None:
    a = cp.node("wl-a")
    event = _export(a, amount="12.50")
    resp = await a.publish(event)
    assert (resp.accepted, resp.duplicates, list(resp.rejected)) == (1, 0, [])
    async with cp.engine.connect() as conn:
        row = (await conn.execute(sa.select(t.events))).one()
    assert row.event_id == event.event_id and row.reference_value == "12.50"
    assert row.correlation_id == event.correlation_id and row.signature and row.payload
    assert await _counters(cp) == {("wl-a", "ACCEPTED"): 1}


async def test_forged_foreign_and_unattributed_events_are_refused_and_counted(cp: RiskCp) -> None:
    a = cp.node("wl-a")
    c = cp.node("wl-c")
    good = _export(a, order="o-good")
    # Tampered: the payload changed after signing (amount raised).
    tampered = a.sign(_export(a, order="o-tampered"))
    forged_event = telemetry_pb2.LedgerEvent.FromString(tampered.payload)
    forged_event.amount.amount = "999999"
    tampered.payload = forged_event.SerializeToString()
    # Signed by another WL's key, claiming to be wl-a.
    by_other = c.sign(_export(a, order="o-other"))
    # No correlation id.
    no_cid = _export(a, order="o-nocid", correlation_id="")
    # No signature at all.
    unsigned = a.sign(_export(a, order="o-unsigned"))
    unsigned.signature = b""
    # A fingerprint the CP never saw.
    unknown = a.sign(_export(a, order="o-unknown"))
    unknown.signer_certificate_sha256 = "ab" * 32
    resp = await a.publish(good, tampered, by_other, no_cid, unsigned, unknown)
    assert resp.accepted == 1
    reasons = {r.index: r.reason for r in resp.rejected}
    assert reasons == {1: "BAD_SIGNATURE", 2: "UNKNOWN_SIGNER", 3: "MISSING_CORRELATION_ID", 4: "UNSIGNED",
                       5: "UNKNOWN_SIGNER"}
    # Once wl-c has called, the CP knows its certificate: the signature verifies but names wl-c, not wl-a.
    await c.publish()
    resp = await a.publish(c.sign(_export(a, order="o-other")))
    assert [r.reason for r in resp.rejected] == ["SIGNER_MISMATCH"]
    assert await _stored_ids(cp) == {good.event_id}
    counters = await _counters(cp)
    assert counters[("wl-a", "BAD_SIGNATURE")] == 1
    assert counters[("wl-a", "MISSING_CORRELATION_ID")] == 1
    assert counters[("wl-a", "UNSIGNED")] == 1
    assert counters[("wl-a", "UNKNOWN_SIGNER")] == 2
    assert counters[("wl-a", "SIGNER_MISMATCH")] == 1


async def test_event_signed_by_issued_certificate_of_another_wl_is_refused(cp: RiskCp) -> None:
    """A certificate in CP-identity's table (issued online) is found by fingerprint; its WL must match."""
    from cp_server.identity.certificates import record_issued
    from xwl_runtime.event_signing import sign

    issued = cp.pki.dir.load_ca().issue(Identity.wl("wl-c"))
    async with cp.engine.begin() as conn:
        await record_issued(conn, wl_id="wl-c", cert=issued.certificate, reason="enroll",
                            now=issued.certificate.not_valid_before_utc)
    a = cp.node("wl-a")
    resp = await a.publish(sign(_export(a, order="o-x"), issued.key_pem, issued.cert_pem))
    assert [r.reason for r in resp.rejected] == ["SIGNER_MISMATCH"]
    # The same key signing wl-c's own event, sent by wl-c: accepted.
    c = cp.node("wl-c")
    own = c.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id="o-c", exporter="wl-c", importer="wl-a",
                  amount="3", currency="XPY-C")
    resp = await c.publish(sign(own, issued.key_pem, issued.cert_pem))
    assert resp.accepted == 1, resp


async def test_events_of_another_wl_sent_by_the_caller_are_refused(cp: RiskCp) -> None:
    a = cp.node("wl-a")
    b = cp.node("wl-b")
    resp = await b.publish(a.sign(_export(a)))  # relaying wl-a's (valid) event from wl-b's connection
    assert [r.reason for r in resp.rejected] == ["UNKNOWN_SIGNER"]
    await a.publish()  # now wl-a's certificate is known to the CP
    resp = await b.publish(a.sign(_export(a, order="o2")))
    assert [r.reason for r in resp.rejected] == ["CALLER_MISMATCH"]
    assert await _stored_ids(cp) == set()


async def test_duplicates_count_once(cp: RiskCp) -> None:
    a = cp.node("wl-a")
    first = _export(a, order="o1", amount="100")
    await cp.node("wl-b").finalize(first)  # the importer agrees: the order counts once
    signed = a.sign(first)
    resp = await a.publish(signed, signed)
    assert (resp.accepted, resp.duplicates) == (1, 1)
    resp = await a.publish(signed)
    assert (resp.accepted, resp.duplicates) == (0, 1)
    # A second confirmation of the same order under another id is a duplicate too.
    resp = await a.publish(_export(a, order="o1", amount="100"))
    assert (resp.accepted, resp.duplicates) == (0, 1)
    balances = await cp.analytics().GetBalances(analytics_service_pb2.GetBalancesRequest(), timeout=10)
    ab = next(b for b in balances.balances if (b.wl_a, b.wl_b) == ("wl-a", "wl-b"))
    assert ab.exports_a_to_b == "100" and ab.net_delta == "100"
    counters = await _counters(cp)
    assert counters[("wl-a", "ACCEPTED")] == 1 and counters[("wl-a", "DUPLICATE")] == 3


async def test_business_checks(cp: RiskCp) -> None:
    a = cp.node("wl-a")
    cases = {
        "UNKNOWN_PAIR": a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id="x1", exporter="wl-a",
                                importer="wl-zz", amount="1", currency="XPY-A"),
        "CURRENCY_MISMATCH": a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id="x3", exporter="wl-a",
                                     importer="wl-b", amount="1", currency="XPY-B"),
        "MISSING_ORDER_ID": _export(a, order=""),
        "MISSING_KIND": a.event(0, order_id="x6", exporter="wl-a", importer="wl-b"),
        "NOT_A_PARTY": a.event(KIND.LEDGER_EVENT_KIND_ORDER_CANCELLED, order_id="x7", exporter="wl-b",
                               importer="wl-c"),
    }
    # (An event from the side that does not own its fact, or a non-canonical amount, fails the whole batch:
    # tests/security/test_event_attacks.py.)
    resp = await a.publish(*cases.values())
    assert resp.accepted == 0
    assert [r.reason for r in resp.rejected] == [
        "UNKNOWN_PAIR", "CURRENCY_MISMATCH", "MISSING_ORDER_ID", "MISSING_KIND", "UNKNOWN_PAIR"]
    assert await _stored_ids(cp) == set()


async def test_operators_may_not_publish(cp: RiskCp) -> None:
    from xporty.cp.v1 import telemetry_service_pb2_grpc

    stub = telemetry_service_pb2_grpc.TelemetryServiceStub(cp.channel(Identity.ops("alice")))
    err = await refused(stub.PublishEvents(telemetry_service_pb2.PublishEventsRequest(), timeout=5))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")


async def test_oversized_batch_is_invalid_and_stores_nothing(pki: PkiFixture, db_url: str) -> None:
    from cp_server.settings.risk import RiskSettings

    async with running_risk_cp(pki, db_url, settings=RiskSettings(max_batch=2)) as cp:
        await cp.seed(WLS, [("wl-a", "wl-b", "1000")])
        cp.honest_importers = False
        a = cp.node("wl-a")
        err = await refused(a.publish(*(_export(a, order=f"o{i}") for i in range(3))))
        assert (err.code, err.reason, err.metadata) == (
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", {"field": "events"})
        assert await _stored_ids(cp) == set() and await _counters(cp) == {}
