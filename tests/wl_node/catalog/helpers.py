"""Shared by the catalog, storefront and trader tests: databases per node, worlds of nodes, stubs, offers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from tests.support.databases import fresh_postgres_database, sqlite_url
from tests.support.eventually import eventually as eventually  # re-exported: tests import it from here
from tests.support.pki import PkiFixture
from xcwl.bench.catalog_nodes import World, start_node
from xporty.common.v1 import money_pb2
from xporty.node.v1 import storefront_service_pb2 as sf
from xporty.node.v1 import storefront_service_pb2_grpc as sf_grpc
from xporty.trader.v1 import offer_pb2
from xporty.trader.v1 import trader_service_pb2_grpc as tr_grpc
from xwl_runtime.identity import Identity
from xwl_runtime.tls import secure_channel

EMAIL = "joana.silva@example.com"
PHONE = "+55 11 91234-4321"
NAME = "Joana Silva"

DbFactory = Callable[[str], str]


@contextlib.contextmanager
def db_factory(kind: str, tmp_path: Path) -> Iterator[DbFactory]:
    """``make(name)`` → a fresh database URL of ``kind`` (one per node)."""
    with contextlib.ExitStack() as stack:
        def make(name: str) -> str:
            if kind == "sqlite":
                return sqlite_url(tmp_path, name)
            return stack.enter_context(fresh_postgres_database())

        yield make


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbFactory]:
    """Like ``db_url``, for tests that run several nodes: each node gets its own database of the same kind."""
    with db_factory(request.param, tmp_path) as make:
        yield make


def offer(offer_id: str, price: str = "10.00", *, currency: str = "XPY-A", **fields: object) -> offer_pb2.Offer:
    base: dict[str, object] = dict(
        offer_id=offer_id, title=f"Offer {offer_id}", description="A fine thing", category="tools",
        unit_price=money_pb2.Money(currency=currency, amount=price), stock=5,
        image_urls=["https://img.example.com/1.png"],
        manager=offer_pb2.TraderContact(name=NAME, email=EMAIL, phone=PHONE),
    )
    base.update(fields)
    return offer_pb2.Offer(**base)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def storefront(pki: PkiFixture, port: int, identity: Identity,
                     node: str = "") -> AsyncIterator[sf_grpc.StorefrontServiceStub]:
    """The local API of ``node``'s node at ``port`` (default: the calling app's own WL), which must prove it."""
    expected = Identity.wl(node or identity.wl_id)
    async with secure_channel(f"127.0.0.1:{port}", pki.material(identity), expected=expected) as channel:
        yield sf_grpc.StorefrontServiceStub(channel)


@contextlib.asynccontextmanager
async def trader(pki: PkiFixture, port: int, identity: Identity,
                 exporter: str = "wl-a") -> AsyncIterator[tr_grpc.TraderServiceStub]:
    """TraderService of ``exporter``'s node at ``port``, called as ``identity``."""
    async with secure_channel(f"127.0.0.1:{port}", pki.material(identity), expected=Identity.wl(exporter)) as channel:
        yield tr_grpc.TraderServiceStub(channel)


def reason_of(err: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    """ErrorInfo reason and metadata of a failed call."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return info.reason, dict(info.metadata)
    return "", {}


async def list_all(stub: sf_grpc.StorefrontServiceStub, **filters: object) -> list[object]:
    out: list[object] = []
    token = ""
    while True:
        resp = await stub.ListImportedOffers(sf.ListImportedOffersRequest(page_token=token, **filters), timeout=5)
        out.extend(resp.offers)
        token = resp.next_page_token
        if not token:
            return out


async def make_world(pki: PkiFixture, dbs: DbFactory, specs: dict[str, tuple[str, int]], **node_kw: object) -> World:
    """Start one node per ``specs`` entry (wl → (currency, decimals)); no views applied yet."""
    world = World()
    for wl, (currency, decimals) in specs.items():
        kw = dict(node_kw.get(wl, {})) if isinstance(node_kw.get(wl), dict) else {}  # type: ignore[call-overload]
        node = await start_node(wl, dbs(wl), pki.dir, **kw)
        world.add_wl(node, currency, decimals)
    return world
