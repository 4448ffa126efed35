"""The node's offer digest reporter against the real CP: what each destination sees, reported at start and soon
after local changes, surviving a CP outage, and filling the compensation plan of a DISABLE signal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import duration_pb2

from cp_server.offer_digest.store import DigestStore, StoredDigest
from tests.cp_server.risk.harness import KIND, Node
from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory, db_factory, offer, storefront
from tests.wl_node.conftest import OPS, eventually
from tests.wl_node.risk.harness import RPC, World, world
from wl_node.app import NodeApp
from wl_node.catalog import digest_reporter
from wl_node.catalog.feed import FeedNotifier
from wl_node.cp_channel import CpChannel, cp_channel_factory
from xporty.cp.v1 import admin_service_pb2, analytics_service_pb2, analytics_service_pb2_grpc, signal_pb2
from xporty.node.v1 import storefront_service_pb2
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import SystemClock
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel


@pytest.fixture
def sqlite_dbs(tmp_path: Path) -> Iterator[DbFactory]:
    """SQLite only, for the tests whose logic does not depend on the backend."""
    with db_factory("sqlite", tmp_path) as make:
        yield make


def reporter_of(node: NodeApp) -> digest_reporter.OfferDigestReporter:
    found = digest_reporter.find(node.components)
    assert found is not None and found.reporter is not None
    return found.reporter


async def publish(w: World, wl_id: str, offer_id: str, price: str, stock: int) -> None:
    async with storefront(w.pki, w.nodes[wl_id].port, Identity.app(wl_id, "shop")) as api:
        await api.PublishOffer(storefront_service_pb2.PublishOfferRequest(
            offer=offer(offer_id, price, currency=f"XPY-{wl_id[-1].upper()}", stock=stock)), timeout=RPC)


async def withdraw(w: World, wl_id: str, offer_id: str) -> None:
    async with storefront(w.pki, w.nodes[wl_id].port, Identity.app(wl_id, "shop")) as api:
        await api.WithdrawOffer(storefront_service_pb2.WithdrawOfferRequest(offer_id=offer_id), timeout=RPC)


async def digests_at_cp(w: World) -> dict[tuple[str, str], StoredDigest]:
    store = DigestStore(w.cp.ctx.engine, w.cp.ctx.engine.begin, None)  # type: ignore[arg-type]
    return {(s.digest.exporter_wl, s.digest.destination_wl): s async for s in store.all()}


async def offer_ids_at_cp(w: World, exporter: str, destination: str) -> list[str] | None:
    found = (await digests_at_cp(w)).get((exporter, destination))
    return None if found is None else [o.offer_id for o in found.digest.offers]


async def direction(w: World, exporter: str, importer: str, **fields: object) -> None:
    resp = await w.admin("UpdateDirectionPolicy", admin_service_pb2.UpdateDirectionPolicyRequest(
        exporter_wl=exporter, importer_wl=importer, reason="test", **fields))
    for node in w.nodes.values():
        await eventually(lambda n=node: n.state.version >= resp.version, timeout=10)


async def test_each_destination_gets_what_it_may_see_and_changes_are_reported_soon(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b", "wl-c", "wl-d"]) as w:
        node = await w.start_node("wl-b")
        await eventually(lambda: node.state.current() is not None, timeout=20)
        await direction(w, "wl-b", "wl-c", destination_visible=False)  # wl-c may not see wl-b's offers
        await direction(w, "wl-b", "wl-d", export_delay=duration_pb2.Duration(seconds=3600))  # all too young for d
        await publish(w, "wl-b", "mug", "3.50", 40)
        await publish(w, "wl-b", "amp", "150.00", 1)
        await publish(w, "wl-b", "gone", "1.00", 1)
        await withdraw(w, "wl-b", "gone")
        # Reported after the changes (debounced), well before the 60 s period.
        took = await eventually(lambda: _ids_are(w, "wl-a", ["amp", "mug"]), timeout=10)
        assert took < 8
        got = await digests_at_cp(w)
        assert got[("wl-b", "wl-c")].digest.offers == ()
        assert got[("wl-b", "wl-d")].digest.offers == ()
        amp = got[("wl-b", "wl-a")].digest.offers[0]
        assert (amp.title, amp.currency, str(amp.unit_price), amp.stock) == ("Offer amp", "XPY-B", "150.00", 1)
        # Only this WL's own destinations; nothing for pairs it is not part of.
        assert {k[0] for k in got} == {"wl-b"}
        last = reporter_of(node).stats.last_digests
        assert {d.destination_wl for d in last} == {"wl-a", "wl-c", "wl-d"}

        # Visibility restored: the next report (triggered by the policy change) lists the offers for wl-c too.
        await direction(w, "wl-b", "wl-c", destination_visible=True)
        await eventually(lambda: _ids_are(w, "wl-c", ["amp", "mug"]), timeout=10)


async def _ids_are(w: World, destination: str, want: list[str]) -> bool:
    return await offer_ids_at_cp(w, "wl-b", destination) == want


async def test_reports_back_off_while_the_cp_is_down_and_resume(
    tmp_path: Path, pki: PkiFixture, sqlite_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, sqlite_dbs, ["wl-a", "wl-b"]) as w:
        node = await w.start_node("wl-b")
        reporter = reporter_of(node)
        reporter.backoff = Backoff(base_s=0.05, cap_s=0.2)
        await eventually(lambda: node.state.current() is not None, timeout=20)
        await publish(w, "wl-b", "mug", "3.50", 40)
        await eventually(lambda: _ids_are(w, "wl-a", ["mug"]), timeout=10)

        await w.cp.stop(0)
        failures = reporter.stats.failures
        await publish(w, "wl-b", "amp", "150.00", 1)  # the node keeps working without the CP
        await eventually(lambda: reporter.stats.failures > failures, timeout=10)
        assert "UNAVAILABLE" in reporter.stats.last_error
        await w.start_cp()
        await eventually(lambda: _ids_are(w, "wl-a", ["amp", "mug"]), timeout=15)


async def test_disable_signal_plan_lists_the_reverse_offers_a_real_node_reported(
    tmp_path: Path, pki: PkiFixture, node_dbs: DbFactory
) -> None:
    async with world(tmp_path, pki, node_dbs, ["wl-a", "wl-b"], limit="1000") as w:
        node_b = await w.start_node("wl-b")
        await eventually(lambda: node_b.state.current() is not None, timeout=20)
        for offer_id, price, stock in (("mug", "3.50", 40), ("amp", "150.00", 1), ("lesson", "20.00", 4),
                                       ("pick", "1.00", 3)):
            await publish(w, "wl-b", offer_id, price, stock)
        await eventually(lambda: _ids_are(w, "wl-a", ["amp", "mug", "lesson", "pick"]), timeout=10)

        # wl-a exports 1,010 to wl-b under a limit of 1,000 (reference rate 1), wl-b agrees (its signed
        # IMPORT_FINALIZED of each sale): the CP disables wl-a → wl-b.
        async with secure_channel(f"127.0.0.1:{w.cp_port}", pki.material(Identity.wl("wl-a")),
                               expected=Identity.cp()) as channel, \
                secure_channel(f"127.0.0.1:{w.cp_port}", pki.material(Identity.wl("wl-b")),
                               expected=Identity.cp()) as channel_b:
            b = Node("wl-b", pki.material(Identity.wl("wl-b")), channel_b)
            a = Node("wl-a", pki.material(Identity.wl("wl-a")), channel, peers=lambda _wl: b)
            for i, amount in enumerate(("700.00", "310.00")):
                resp = await a.publish(a.event(KIND.LEDGER_EVENT_KIND_EXPORT_CONFIRMED, order_id=f"o{i}",
                                               exporter="wl-a", importer="wl-b", amount=amount, currency="XPY-A"))
                assert resp.accepted == 1
        async with secure_channel(f"127.0.0.1:{w.cp_port}", pki.material(OPS), expected=Identity.cp()) as channel:
            signals = (await analytics_service_pb2_grpc.AnalyticsServiceStub(channel).ListSignals(
                analytics_service_pb2.ListSignalsRequest(), timeout=RPC)).signals
        disable = next(s for s in signals if s.kind == signal_pb2.SIGNAL_KIND_DISABLE)
        assert (disable.exporter_wl, disable.importer_wl) == ("wl-a", "wl-b")
        # 210 to cover: amp (150) first, then ceil(60 / 3.5) = 18 mugs; lesson and pick are not needed.
        assert disable.plan.required_reference_value == "210.00"
        assert [(o.offer_id, o.cover_quantity, o.reference_value, o.exporter_wl, o.importer_wl)
                for o in disable.plan.offers] == [("amp", 1, "150.00", "wl-b", "wl-a"),
                                                  ("mug", 18, "140.00", "wl-b", "wl-a")]
        assert disable.plan.offers[0].title == "Offer amp"


async def test_a_refusal_waits_for_the_next_period_instead_of_retrying(
    tmp_path: Path, pki: PkiFixture, sqlite_dbs: DbFactory
) -> None:
    """A refusal that retrying cannot fix (here the CP's authorization: an operator certificate may not report)
    is not retried in a tight loop; an outage is (see above)."""
    async with world(tmp_path, pki, sqlite_dbs, ["wl-a", "wl-b"]) as w:
        node = await w.start_node("wl-b")
        await eventually(lambda: node.state.current() is not None, timeout=20)
        cp = CpChannel(cp_channel_factory(f"127.0.0.1:{w.cp_port}", reconnect_cap_s=0.3), pki.material(OPS),
                       identity=OPS)
        reporter = digest_reporter.OfferDigestReporter(
            node.engine, node.state, cp, SystemClock(), FeedNotifier(),
            digest_reporter.ReporterConfig(interval_s=30), backoff=Backoff(base_s=0.01, cap_s=0.02))
        stop = asyncio.Event()
        task = asyncio.create_task(reporter.run(stop))
        try:
            await eventually(lambda: reporter.stats.failures >= 1, timeout=10)
            await asyncio.sleep(0.5)  # a transient error would have been retried ~25 times by now
            assert reporter.stats.failures == 1
            assert reporter.stats.last_error.startswith("PERMISSION_DENIED")
        finally:
            stop.set()
            await task
            await cp.close()
