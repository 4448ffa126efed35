"""Input limits on the real servers: text bounded before any query, no control or bidi characters in human text,
errors that never echo more than a short prefix, and LIKE wildcards matched literally.

CP cases run on a real CP (production pipeline, mTLS on port 0) over SQLite and PostgreSQL; node cases on real
catalog nodes syncing over mTLS. Each refusal is checked for its status, ErrorInfo reason and named field, and for
what stayed unchanged (registry, audit head, node status, stored offers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2, status_pb2

from tests.e2e.conftest import OPERATOR, Stack, running_stack
from tests.support.pki import PkiFixture
from tests.support.trust import import_wls
from tests.wl_node.catalog.helpers import DbFactory, dbs, eventually, list_all, offer, storefront  # noqa: F401
from tests.wl_node.catalog.test_sync import SHOP_B, _world, put, rows
from wl_node.catalog.tables import offers
from wl_node.catalog.validation import validate_offer
from xcwl.bench.catalog_nodes import World
from xporty.cp.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    policy_service_pb2,
    policy_service_pb2_grpc,
    registry_pb2,
    signal_pb2,
    signal_service_pb2,
    signal_service_pb2_grpc,
)
from xporty.node.v1 import storefront_service_pb2 as sf
from xwl_runtime.errors import ECHO_CHARS, MAX_METADATA_CHARS, NotFound, decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

FORBIDDEN = {
    "ESC (terminal escape)": "\x1b[2J",
    "NUL": "\x00",
    "newline (C0)": "\n",
    "DEL": "\x7f",
    "C1 NEL": "\x85",
    "C1 CSI": "\x9b",
    "RLO (bidi override)": "\u202e",
    "LRI (bidi isolate)": "\u2066",
}
HUGE = "x" * 1_000_000
MAX_ANSWER_BYTES = 2_000
"""A refusal's message plus its status details stay this small whatever the caller sent."""
SHOP_A = Identity.app("wl-a", "shop")


def _bad_request_fields(err: grpc.aio.AioRpcError) -> list[str]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):  # type: ignore[arg-type]
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    return [v.field for v in bad.field_violations]
    return []


def _answer_size(err: grpc.aio.AioRpcError) -> int:
    size = len((err.details() or "").encode())
    for key, value in err.trailing_metadata() or ():
        size += len(key) + len(value if isinstance(value, bytes) else value.encode())
    return size


def assert_invalid(err: grpc.aio.AioRpcError, field: str) -> None:
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT, (field, err.code(), err.details())
    remote = decode_rpc_error(err)
    assert remote.reason == "INVALID_ARGUMENT"
    assert (remote.metadata or {}).get("field") == field
    assert _bad_request_fields(err)[0] == field
    assert _answer_size(err) < MAX_ANSWER_BYTES


async def _refused(call: object, request: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request, timeout=10)  # type: ignore[operator]
    return err.value


@pytest.fixture
async def stack(pki: PkiFixture, db_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(pki, db_url, tmp_path) as s:
        await import_wls(s.cp, pki, "wl-b")  # the tests also call the CP as wl-b (offline-issued certificate)
        yield s


async def _cp_state(stack: Stack) -> tuple[list[str], int, tuple[int, int, str] | None]:
    """Registry (ids and names), audit head and wl-b's node status (the tests report as wl-b, which runs no node;
    wl-a's real node reports on its own): what a refused request must not change."""
    async with stack.ops_client() as ops:
        wls = [f"{w.wl_id}={w.name}" for w in await ops.list_wls()]
        audit = await ops.list_audit(0, 1000)
        nodes = {n.wl_id: (n.applied_version, n.rejected_version, n.last_error) for n in await ops.node_status()}
    return wls, (audit[-1].sequence if audit else 0), nodes.get("wl-b")


async def test_cp_human_text_refuses_controls_and_bidi(pki: PkiFixture, stack: Stack) -> None:
    before = await _cp_state(stack)
    async with secure_channel(stack.cp_target, pki.material(Identity.ops(OPERATOR)), expected=Identity.cp()) as channel:
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        signals = signal_service_pb2_grpc.SignalServiceStub(channel)
        for label, bad in FORBIDDEN.items():
            wl = registry_pb2.WhiteLabel(wl_id="wl-c", name=f"Evil{bad}Market", currency="XPY-C", currency_decimals=2,
                                         reference_rate="1", trader_endpoint="127.0.0.1:9")
            err = await _refused(admin.RegisterWl, admin_service_pb2.RegisterWlRequest(white_label=wl))
            assert_invalid(err, "white_label.name")
            assert bad not in (err.details() or ""), label
            err = await _refused(admin.UpdateWl, admin_service_pb2.UpdateWlRequest(wl_id="wl-a", name=f"A{bad}"))
            assert_invalid(err, "name")
            err = await _refused(admin.UpdatePairPolicy, admin_service_pb2.UpdatePairPolicyRequest(
                wl_a="wl-a", wl_b="wl-b", imbalance_limit="2000", reason=f"why{bad}"))
            assert_invalid(err, "reason")
            err = await _refused(signals.SendSignal, signal_service_pb2.SendSignalRequest(
                kind=signal_pb2.SIGNAL_KIND_DISABLE, exporter_wl="wl-a", importer_wl="wl-b", reason=f"r{bad}"))
            assert_invalid(err, "reason")
        async with stack.ops_client() as ops:
            assert await ops.signals() == []
    async with secure_channel(stack.cp_target, pki.material(Identity.wl("wl-b")), expected=Identity.cp()) as channel:
        policy = policy_service_pb2_grpc.PolicyServiceStub(channel)
        err = await _refused(policy.ReportPolicyStatus, policy_service_pb2.ReportPolicyStatusRequest(
            rejected_version=1, error="view refused \x1b]0;pwned\x07"))
        assert_invalid(err, "error")
    assert await _cp_state(stack) == before


async def test_cp_oversized_text_is_refused_before_any_query_and_never_echoed(pki: PkiFixture, stack: Stack) -> None:
    before = await _cp_state(stack)
    async with secure_channel(stack.cp_target, pki.material(Identity.ops(OPERATOR)), expected=Identity.cp()) as channel:
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        policy = policy_service_pb2_grpc.PolicyServiceStub(channel)
        assert_invalid(await _refused(policy.GetPolicies, policy_service_pb2.GetPoliciesRequest(wl_id=HUGE)), "wl_id")
        assert_invalid(await _refused(admin.UpdateWl, admin_service_pb2.UpdateWlRequest(wl_id="wl-a", name=HUGE)),
                       "name")
        assert_invalid(await _refused(admin.GetPairPolicy, admin_service_pb2.GetPairPolicyRequest(
            wl_a=HUGE, wl_b="wl-b")), "wl_a")
        assert_invalid(await _refused(admin.CreateBootstrapToken, admin_service_pb2.CreateBootstrapTokenRequest(
            wl_id=HUGE)), "wl_id")
    async with secure_channel(stack.cp_target, pki.material(Identity.wl("wl-b")), expected=Identity.cp()) as channel:
        signals = signal_service_pb2_grpc.SignalServiceStub(channel)
        err = await _refused(signals.AckSignal, signal_service_pb2.AckSignalRequest(signal_id=HUGE))
        assert err.code() is grpc.StatusCode.INVALID_ARGUMENT  # effective_time or signal_id, never INTERNAL
        request = signal_service_pb2.AckSignalRequest(signal_id=HUGE)
        request.effective_time.GetCurrentTime()
        assert_invalid(await _refused(signals.AckSignal, request), "signal_id")
        # An unknown id within bounds is NOT_FOUND, echoing a short prefix only.
        request.signal_id = "s" * 120
        err = await _refused(signals.AckSignal, request)
        assert err.code() is grpc.StatusCode.NOT_FOUND
        assert "s" * ECHO_CHARS in (err.details() or "") and "s" * (ECHO_CHARS + 1) not in (err.details() or "")
        policy = policy_service_pb2_grpc.PolicyServiceStub(channel)
        assert_invalid(await _refused(policy.ReportPolicyStatus, policy_service_pb2.ReportPolicyStatusRequest(
            rejected_version=1, error=HUGE)), "error")
    assert await _cp_state(stack) == before


def test_error_details_are_bounded_whatever_the_servicer_puts_there() -> None:
    err = NotFound(f"order {HUGE} not found", metadata={"order_id": HUGE, **{f"k{i}": "v" for i in range(100)}})
    status = err.to_status()
    assert len(status.details) < 1000
    assert all(len(v) <= MAX_METADATA_CHARS for v in err.metadata.values())
    assert sum(len(v if isinstance(v, bytes) else v.encode()) for _, v in status.trailing_metadata) < 4000


# --- node: storefront and catalog ------------------------------------------------------------------------------


@pytest.fixture
async def world(pki: PkiFixture, dbs: DbFactory) -> AsyncIterator[World]:  # noqa: F811 - dbs is a fixture
    w = await _world(pki, dbs)
    try:
        yield w
    finally:
        await w.close()


async def _offer_rows(world: World, wl: str) -> int:
    async with world.nodes[wl].engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(offers)) or 0)


async def test_node_search_and_ids_are_bounded_and_like_wildcards_are_literal(pki: PkiFixture, world: World) -> None:
    a, b = world.nodes["wl-a"], world.nodes["wl-b"]
    await put(a, "o-pct", "10.00", "XPY-A", title="100% cotton shirt")
    await put(a, "o-plain", "10.00", "XPY-A", title="Plain shirt")

    async def synced() -> bool:
        return await rows(b, "wl-a") == 2

    await eventually(synced, timeout=10)
    async with storefront(pki, b.server.port, SHOP_B) as stub:
        # 50,001 characters used to reach SQLite's LIKE ("pattern too complex": INTERNAL).
        for field, request in (
            ("text", sf.ListImportedOffersRequest(text="a" * 50_001)),
            ("text", sf.ListImportedOffersRequest(text="shirt\x1b[8m")),
            ("text", sf.ListImportedOffersRequest(text="\u202eshirt")),
            ("category", sf.ListImportedOffersRequest(category=HUGE)),
            ("source_wl", sf.ListImportedOffersRequest(source_wl=HUGE)),
            ("page_token", sf.ListImportedOffersRequest(page_token=HUGE)),
        ):
            assert_invalid(await _refused(stub.ListImportedOffers, request), field)
        assert_invalid(await _refused(stub.GetImportedOffer, sf.GetImportedOfferRequest(imported_offer_id=HUGE)),
                       "imported_offer_id")
        # LIKE wildcards are matched as characters: '%' finds only the title holding one, '_' finds none.
        assert [o.title for o in await list_all(stub, text="%")] == ["100% cotton shirt"]
        assert await list_all(stub, text="_") == []
        assert len(await list_all(stub, text="SHIRT")) == 2


async def test_node_offer_text_refuses_controls_and_bidi_and_stores_nothing(pki: PkiFixture, world: World) -> None:
    a = world.nodes["wl-a"]
    before = await _offer_rows(world, "wl-a")
    async with storefront(pki, a.server.port, SHOP_A) as stub:
        for label, bad in FORBIDDEN.items():
            for field, fields in (("offer.title", {"title": f"Shirt{bad}"}),
                                  ("offer.category", {"category": f"clothes{bad}"}),
                                  ("offer.description", {"description": f"Fine{bad}cotton"}),
                                  ("offer.manager.name", {})):
                request_offer = offer("o-evil", **fields)  # type: ignore[arg-type]
                if field == "offer.manager.name":
                    request_offer.manager.name = f"Jo{bad}"
                err = await _refused(stub.PublishOffer, sf.PublishOfferRequest(offer=request_offer))
                assert_invalid(err, field)
                assert bad not in (err.details() or ""), label
    assert await _offer_rows(world, "wl-a") == before


async def test_importer_refuses_offers_with_controls_from_an_exporter_that_let_them_through(
    pki: PkiFixture, world: World
) -> None:
    """An exporter running older code (simulated by writing past its validation) serves a title with an escape
    sequence and a description with a bidi override: the importer stores neither offer, and keeps the clean one."""
    a, b = world.nodes["wl-a"], world.nodes["wl-b"]
    clean = validate_offer(offer("o-clean"), currency="XPY-A", decimals=2)
    await a.catalog.book.publish(replace(clean, offer_id="o-esc", title="Shirt\x1b]0;owned\x07"))
    await a.catalog.book.publish(replace(clean, offer_id="o-rlo", description="fine \u202eexe.txt"))
    await a.catalog.book.publish(clean)  # last: the feed is in sequence order, so once it arrived the others have

    async def synced() -> bool:
        async with storefront(pki, b.server.port, SHOP_B) as stub:
            return len(await list_all(stub)) >= 1

    await eventually(synced, timeout=10)
    async with storefront(pki, b.server.port, SHOP_B) as stub:
        assert [o.imported_offer_id for o in await list_all(stub)] == ["wl-a:o-clean"]
    assert await rows(b, "wl-a") == 1
