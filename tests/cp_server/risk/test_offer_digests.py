"""ReportOffers (validation, authorization, replace semantics) and the DISABLE signal's compensation plan built from
the stored digests — real CP over mTLS, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from cp_server.offer_digest.store import StoredDigest
from tests.cp_server.identity.rpc import refused
from tests.cp_server.risk.harness import KIND, Node, RiskCp, running_risk_cp
from tests.support.pki import PkiFixture
from xporty.cp.v1 import analytics_service_pb2, telemetry_pb2, telemetry_service_pb2, telemetry_service_pb2_grpc
from xwl_runtime.identity import Identity

# wl-b's currency is worth 0.5 in the reference unit: its offers are valued at half their price.
WLS = {"wl-a": ("XPY-A", "1"), "wl-b": ("XPY-B", "0.5"), "wl-c": ("XPY-C", "1")}


@pytest.fixture
async def cp(pki: PkiFixture, db_url: str) -> AsyncIterator[RiskCp]:
    async with running_risk_cp(pki, db_url) as cp:
        await cp.seed(WLS, [("wl-a", "wl-b", "1000"), ("wl-b", "wl-c", "1000")])
        yield cp


def offer(offer_id: str, price: str, stock: int, currency: str = "XPY-B", title: str = "") -> telemetry_pb2.DigestOffer:
    return telemetry_pb2.DigestOffer(offer_id=offer_id, title=title or f"title {offer_id}", available_stock=stock,
                                     unit_price={"currency": currency, "amount": price})


def digest(destination: str, *offers: telemetry_pb2.DigestOffer, at: dt.datetime | None = None
           ) -> telemetry_pb2.OfferDigest:
    d = telemetry_pb2.OfferDigest(destination_wl=destination, offers=list(offers))
    d.generate_time.FromDatetime(at or dt.datetime.now(dt.UTC))
    return d


async def report(node: Node, *digests: telemetry_pb2.OfferDigest, exporter: str = ""
                 ) -> telemetry_service_pb2.ReportOffersResponse:
    return await node.telemetry.ReportOffers(
        telemetry_service_pb2.ReportOffersRequest(exporter_wl=exporter, digests=list(digests)), timeout=10)


async def stored(cp: RiskCp) -> dict[tuple[str, str], StoredDigest]:
    assert cp.parts.digests is not None
    return {(s.digest.exporter_wl, s.digest.destination_wl): s async for s in cp.parts.digests.all()}


def violations(call_error: grpc.aio.AioRpcError) -> list[str]:
    for key, value in call_error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    return [v.field for v in bad.field_violations]
    return []


async def test_latest_report_replaces_the_destinations_digest(cp: RiskCp) -> None:
    b = cp.node("wl-b")
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    resp = await report(b, digest("wl-a", offer("b-1", "20.00", 8), offer("b-2", "7.25", 40), at=t0),
                        digest("wl-c", offer("b-1", "20.00", 8), at=t0))
    assert resp.stored == 2
    got = await stored(cp)
    assert [o.offer_id for o in got[("wl-b", "wl-a")].digest.offers] == ["b-1", "b-2"]
    assert got[("wl-b", "wl-a")].digest.offers[1].unit_price == Decimal("7.25")
    assert got[("wl-b", "wl-a")].digest.generate_time == t0.replace(microsecond=t0.microsecond)

    # The whole digest is replaced (b-1 is gone); the other destination keeps its own.
    resp = await report(b, digest("wl-a", offer("b-3", "1.00", 2), at=t0 + dt.timedelta(seconds=10)))
    assert resp.stored == 1
    got = await stored(cp)
    assert [o.offer_id for o in got[("wl-b", "wl-a")].digest.offers] == ["b-3"]
    assert [o.offer_id for o in got[("wl-b", "wl-c")].digest.offers] == ["b-1"]

    # An older report (a retry overtaken by a newer one) does not roll the digest back.
    resp = await report(b, digest("wl-a", offer("b-9", "1.00", 2), at=t0))
    assert resp.stored == 0
    assert [o.offer_id for o in (await stored(cp))[("wl-b", "wl-a")].digest.offers] == ["b-3"]

    # An empty digest clears the destination (the partner may see nothing now).
    assert (await report(b, digest("wl-a", at=t0 + dt.timedelta(seconds=20)))).stored == 1
    assert (await stored(cp))[("wl-b", "wl-a")].digest.offers == ()


async def test_invalid_digests_are_refused_by_field_and_store_nothing(pki: PkiFixture, db_url: str) -> None:
    from cp_server.settings.risk import RiskSettings

    async with running_risk_cp(pki, db_url, settings=RiskSettings(digest_max_offers=3)) as cp:
        await cp.seed(WLS, [("wl-a", "wl-b", "1000"), ("wl-b", "wl-c", "1000")])
        b = cp.node("wl-b")
        future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        cases = [
            (digest("wl-x", offer("b-1", "1", 1)), "digests[1].destination_wl"),  # not a partner
            (digest("wl-b", offer("b-1", "1", 1)), "digests[1].destination_wl"),  # itself
            (digest("wl-c", offer("b-1", "1", 1), at=future), "digests[1].generate_time"),
            (digest("wl-c", *(offer(f"b-{i}", "1", 1) for i in range(4))), "digests[1].offers"),
            (digest("wl-c", offer("b-1", "1", 1), offer("b-1", "2", 1)), "digests[1].offers[1].offer_id"),
            (digest("wl-c", offer("", "1", 1)), "digests[1].offers[0].offer_id"),
            (digest("wl-c", offer("b-1", "1", 1, currency="XPY-A")), "digests[1].offers[0].unit_price.currency"),
            (digest("wl-c", offer("b-1", "-3", 1)), "digests[1].offers[0].unit_price.amount"),
            (digest("wl-c", offer("b-1", "NaN", 1)), "digests[1].offers[0].unit_price.amount"),
            (digest("wl-c", offer("b-1", "1", 0)), "digests[1].offers[0].available_stock"),
            (digest("wl-c", offer("b-1", "1", 1, title="t" * 201)), "digests[1].offers[0].title"),
        ]
        for bad, field in cases:
            # A valid digest first: the request is all or nothing.
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await report(b, digest("wl-a", offer("ok", "1", 1)), bad)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert violations(info.value) == [field]
        no_time = telemetry_pb2.OfferDigest(destination_wl="wl-a")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await report(b, no_time, digest("wl-a"))
        assert violations(info.value) == ["digests[0].generate_time", "digests[1].destination_wl"]
        assert await stored(cp) == {}


async def test_a_node_reports_only_its_own_offers(cp: RiskCp) -> None:
    b = cp.node("wl-b")
    err = await refused(report(b, digest("wl-b", offer("a-1", "1", 1, currency="XPY-A")), exporter="wl-a"))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_MISMATCH")
    ops = telemetry_service_pb2_grpc.TelemetryServiceStub(cp.channel(Identity.ops("alice")))
    err = await refused(ops.ReportOffers(telemetry_service_pb2.ReportOffersRequest(
        exporter_wl="wl-b", digests=[digest("wl-a", offer("b-1", "1", 1))]), timeout=5))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_NOT_ALLOWED")
    assert await stored(cp) == {}
    # Naming itself is the same as leaving the field empty.
    assert (await report(b, digest("wl-a", offer("b-1", "1", 1)), exporter="wl-b")).stored == 1


async def _push_over_limit(cp: RiskCp) -> None:
    """wl-a exports 1,010 (reference) to wl-b under a limit of 1,000: the CP disables wl-a → wl-b."""
    a = cp.node("wl-a")
    for i, amount in enumerate(("700", "310")):
        resp = await a.publish(a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id=f"o{i}", exporter="wl-a",
                                       importer="wl-b", amount=amount, currency="XPY-A"))
        assert resp.accepted == 1


async def _disable_signal(cp: RiskCp):  # type: ignore[no-untyped-def]
    resp = await cp.analytics().ListSignals(analytics_service_pb2.ListSignalsRequest(), timeout=10)
    return next(s for s in resp.signals if s.kind == 1)


async def test_disable_plan_ranks_the_reverse_directions_offers(cp: RiskCp) -> None:
    b = cp.node("wl-b")
    at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # wl-b's offers as wl-a sees them (reference value = price x 0.5 x stock); wl-b's digest for wl-c must not
    # be used, and wl-a's own digest for wl-b neither.
    await report(b, digest("wl-a", offer("mug", "7.25", 40), offer("lesson", "20.00", 8), offer("pick", "1.00", 3),
                           offer("amp", "300.00", 1), at=at),
                 digest("wl-c", offer("other", "1000.00", 100), at=at))
    await report(cp.node("wl-a"), digest("wl-b", offer("a-x", "1000", 100, currency="XPY-A"), at=at))
    await _push_over_limit(cp)
    signal = await _disable_signal(cp)
    assert (signal.exporter_wl, signal.importer_wl) == ("wl-a", "wl-b")
    # required = |1010| - 0.80 x 1000 = 210. By stock value: amp 150 (1 x 150), mug 145 (40 x 3.625), lesson 80,
    # pick 1.5. amp covers 150 with its one unit; 60 remain → mug: ceil(60 / 3.625) = 17 units. Covered: stop.
    assert signal.plan.required_reference_value == "210.00"
    got = [(o.offer_id, o.reference_value, o.unit_reference_value, o.available_stock, o.cover_quantity)
           for o in signal.plan.offers]
    assert got == [("amp", "150.000", "150.000", 1, 1), ("mug", "145.000", "3.625", 40, 17)]
    first = signal.plan.offers[0]
    assert (first.title, first.exporter_wl, first.importer_wl) == ("title amp", "wl-b", "wl-a")
    assert (first.unit_price.currency, first.unit_price.amount) == ("XPY-B", "300.00")
    assert first.digest_time.ToDatetime(dt.UTC) == at


async def test_a_stale_digest_gives_a_plan_without_offers(cp: RiskCp) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=11)  # RiskSettings.plan_digest_max_age is 10 min
    await report(cp.node("wl-b"), digest("wl-a", offer("mug", "7.25", 40), at=old))
    await _push_over_limit(cp)
    signal = await _disable_signal(cp)
    assert signal.plan.required_reference_value == "210.00"
    assert list(signal.plan.offers) == []
