"""An exporter node for order tests: real store (SQLite or PostgreSQL), the production server stack over mTLS, a
policy view carrying the test CP's JWT key, and an offers table standing in for the catalog's."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import sqlalchemy as sa
from google.protobuf import duration_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.identity.signing import verification_keys
from tests.support.pki import PkiFixture
from wl_node.authz import TABLE as NODE_AUTHZ
from wl_node.catalog.feed import FeedNotifier
from wl_node.context import NodeContext
from wl_node.orders.component import Orders, install
from wl_node.orders.gate import OrderGuard
from wl_node.orders.stock import SqlOfferStock
from wl_node.policy.state import PolicyState
from wl_node.privacy.accounts import TraderAccounts
from wl_node.settings import NodeSettings
from wl_node.store import migrate
from wl_node.trader.component import install as install_trader
from xporty.common.v1 import money_pb2
from xporty.cp.v1 import policy_pb2, registry_pb2
from xporty.trader.v1 import trader_service_pb2 as pb
from xporty.trader.v1 import trader_service_pb2_grpc as pb_grpc
from xwl_runtime import db
from xwl_runtime.clock import Clock, SystemClock
from xwl_runtime.identity import Identity
from xwl_runtime.lifecycle import Lifecycle
from xwl_runtime.pki import new_private_key
from xwl_runtime.server import Listener, RunningServer, start_server
from xwl_runtime.sqltypes import UtcDateTime
from xwl_runtime.tls import ReloadableServerCredentials, secure_channel
from xwl_runtime.tokens import SCOPE_PLACE_ORDERS, bearer_metadata, issue_token

JWT_KEY = new_private_key()
EXPORTER = "wl-a"
IMPORTERS = ("wl-b", "wl-c", "wl-d")

test_metadata = sa.MetaData()
test_offers = sa.Table(
    "test_offers",
    test_metadata,
    sa.Column("offer_id", sa.String(128), primary_key=True),
    sa.Column("currency", sa.String(16), nullable=False),
    sa.Column("unit_price", sa.String(40), nullable=False),
    sa.Column("stock", sa.BigInteger, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=True),
    sa.Column("withdrawn", sa.Boolean, nullable=False, default=False),
)


def test_stock() -> SqlOfferStock:
    c = test_offers.c
    return SqlOfferStock(id_col=c.offer_id, stock_col=c.stock, price_col=c.unit_price, currency_col=c.currency,
                         published_col=c.published_at, live=c.withdrawn.is_(False))


def white_label(wl_id: str, endpoint: str = "127.0.0.1:1") -> registry_pb2.WhiteLabel:
    return registry_pb2.WhiteLabel(wl_id=wl_id, name=f"Market {wl_id}", currency=f"XPY-{wl_id[-1].upper()}",
                                   currency_decimals=2, reference_rate="1.00", trader_endpoint=endpoint)


def policy_view(
    wl_id: str,
    version: int,
    peers: Sequence[str],
    *,
    endpoints: dict[str, str] | None = None,
    status: int = policy_pb2.RELATIONSHIP_STATUS_ACTIVE,
    fx: str = "2.5",
    fx_version: int = 1,
    import_enabled: bool = True,
    visible: bool = True,
    frozen: bool = False,
    export_delay_s: int = 0,
    imbalance_limit: str = "1000000",
) -> policy_pb2.PolicyView:
    """A view for ``wl_id`` with one pair per peer, all with the same settings, signed-token keys of JWT_KEY."""
    endpoints = endpoints or {}
    view = policy_pb2.PolicyView(wl_id=wl_id, version=version)
    view.generate_time.FromDatetime(dt.datetime.now(dt.UTC))
    view.white_labels.extend([white_label(w, endpoints.get(w, "127.0.0.1:1")) for w in (wl_id, *peers)])
    for peer in peers:
        a, b = sorted((wl_id, peer))
        directions = [
            policy_pb2.DirectionPolicy(exporter_wl=x, importer_wl=y, import_enabled=import_enabled,
                                       destination_visible=visible,
                                       export_delay=duration_pb2.Duration(seconds=export_delay_s))
            for x, y in ((a, b), (b, a))
        ]
        view.pairs.append(policy_pb2.PairPolicy(
            wl_a=a, wl_b=b, status=status, imbalance_limit=imbalance_limit, fx_rate=fx, fx_version=fx_version,
            imports_frozen=frozen, changed_version=version, directions=directions))
    view.token_keys.extend(verification_keys(JWT_KEY))
    return view


def token(importer: str, *, audience: str = EXPORTER, key=JWT_KEY, now: dt.datetime | None = None,  # noqa: ANN001
          lifetime: dt.timedelta = dt.timedelta(minutes=5)) -> str:
    return issue_token(key, subject=Identity.wl(importer), audience_wl=audience, scopes=[SCOPE_PLACE_ORDERS],
                       now=now or dt.datetime.now(dt.UTC), lifetime=lifetime).token


def auth(importer: str, **kw: object) -> tuple[tuple[str, str], ...]:
    return bearer_metadata(token(importer, **kw))  # type: ignore[arg-type]


def place_request(key: str, *, offer: str = "o1", qty: int = 1, price: str = "10.00", currency: str = "XPY-A",
                  fx_version: int = 1) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(idempotency_key=key, offer_id=offer, quantity=qty,
                                expected_unit_price=money_pb2.Money(currency=currency, amount=price),
                                expected_fx_version=fx_version)


@dataclass
class Exporter:
    """A running exporter node (order desk only)."""

    wl_id: str
    url: str
    engine: AsyncEngine
    state: PolicyState
    orders: Orders
    server: RunningServer
    clock: Clock
    pki: PkiFixture
    lifecycle: Lifecycle
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def expected(self) -> Identity:
        """The identity the exporter's server must prove."""
        return Identity.wl(self.wl_id)

    def stub(self, importer: str) -> pb_grpc.TraderServiceStub:
        channel = secure_channel(self.target, self.pki.material(Identity.wl(importer)), expected=self.expected)
        self.channels.append(channel)
        return pb_grpc.TraderServiceStub(channel)

    async def add_offer(self, offer_id: str = "o1", *, stock: int = 50, price: str = "10.00",
                        published_at: dt.datetime | None = None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(test_offers).values(
                offer_id=offer_id, currency="XPY-A", unit_price=price, stock=stock,
                published_at=published_at or dt.datetime(2026, 1, 1, tzinfo=dt.UTC), withdrawn=False))

    async def stock(self, offer_id: str = "o1") -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(sa.select(test_offers.c.stock).where(test_offers.c.offer_id == offer_id)))

    async def count(self, tbl: sa.Table, *where: sa.ColumnElement[bool]) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(tbl).where(*where)))

    async def stop(self) -> None:
        for ch in self.channels:
            await ch.close()
        await self.lifecycle.stop(0)


async def start_exporter(
    pki: PkiFixture,
    url: str,
    *,
    wl_id: str = EXPORTER,
    peers: Sequence[str] = IMPORTERS,
    view: policy_pb2.PolicyView | None = None,
    port: int = 0,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    clock: Clock | None = None,
    pool_size: int = 20,
    guards: Sequence[OrderGuard] = (),
) -> Exporter:
    await asyncio.to_thread(migrate, url)
    engine = db.create_engine(url, pool_size=pool_size)
    async with engine.begin() as conn:
        await conn.run_sync(test_metadata.create_all)
    clock = clock or SystemClock()
    state = PolicyState(wl_id, clock, dt.timedelta(minutes=10))
    await state.apply(view or policy_view(wl_id, 1, peers))
    material = pki.material(Identity.wl(wl_id))
    settings = NodeSettings(wl_id=wl_id, pki_dir=pki.dir.root, cp_target="127.0.0.1:1", db_url=url)
    ctx = NodeContext(settings=settings, engine=engine, clock=clock, tls=material)
    orders = install(ctx, state, test_stock(), guards=guards)
    trader = install_trader(ctx, state, notifier=FeedNotifier(), orders=orders.rpc,
                            accounts=TraderAccounts(ctx.keyring, wl_id))
    server = await start_server(
        registrations=trader.component.registrations, service_names=trader.component.service_names,
        listeners=[Listener(f"127.0.0.1:{port}", ReloadableServerCredentials(material).credentials)],
        authz_table=NODE_AUTHZ, local_wl=wl_id, extra_interceptors=interceptors,
    )
    lifecycle = Lifecycle(server, [orders.component, trader.component], closers=[engine.dispose])
    return Exporter(wl_id, url, engine, state, orders, server, clock, pki, lifecycle)
