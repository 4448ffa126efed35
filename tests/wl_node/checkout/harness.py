"""Importer nodes for checkout tests, a token-issuing CP double, and a fault-injecting server interceptor."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import grpc
import sqlalchemy as sa

from cp_server.authz import TABLE as CP_AUTHZ
from tests.support.eventually import eventually as eventually  # re-exported: tests import it from here
from tests.support.pki import PkiFixture
from tests.wl_node.orders.harness import JWT_KEY, Exporter, policy_view
from wl_node.authz import TABLE as NODE_AUTHZ
from wl_node.checkout.component import CheckoutConfig, Checkouts, install
from wl_node.checkout.offers import ImportedOfferTerms
from wl_node.context import NodeContext
from wl_node.cp_channel import CpChannel, cp_channel_factory
from wl_node.peers.client import PeerConfig
from wl_node.peers.component import install as install_peers
from wl_node.policy.state import PolicyState
from wl_node.risk.local_guard import LocalGuard
from wl_node.settings import NodeSettings
from wl_node.store import migrate
from xcwl.bench.importer_node import StaticImportedOffers, checkout_storefront
from xporty.cp.v1 import identity_service_pb2 as id_pb
from xporty.cp.v1 import identity_service_pb2_grpc as id_grpc
from xporty.node.v1 import storefront_pb2
from xporty.node.v1 import storefront_service_pb2 as sf_pb
from xporty.node.v1 import storefront_service_pb2_grpc as sf_grpc
from xwl_runtime import correlation, db
from xwl_runtime.clock import Clock, SystemClock
from xwl_runtime.fieldcrypt import Keyring
from xwl_runtime.identity import Identity
from xwl_runtime.lifecycle import Lifecycle
from xwl_runtime.pipeline import caller
from xwl_runtime.server import Listener, RunningServer, start_server
from xwl_runtime.tls import ReloadableServerCredentials, secure_channel
from xwl_runtime.tokens import issue_token

APP = "shop"
_KEYRINGS: dict[str, Keyring] = {}


class TokenIssuer(id_grpc.IdentityServiceServicer):
    """IssueToken as the CP does it, with the test JWT key; counts calls. IssueTokens is answered as by a CP that
    does not have it (UNIMPLEMENTED)."""

    def __init__(self, lifetime: dt.timedelta = dt.timedelta(minutes=5), clock: Clock | None = None) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.clock = clock or SystemClock()

    async def IssueToken(self, request, context):  # noqa: N802
        self.calls += 1
        issued = issue_token(JWT_KEY, subject=caller(), audience_wl=request.audience_wl, scopes=request.scopes,
                             now=self.clock.now(), lifetime=self.lifetime)
        resp = id_pb.IssueTokenResponse(token=issued.token)
        resp.expire_time.FromDatetime(issued.expires_at)
        return resp

    async def IssueTokens(self, request, context):  # noqa: N802
        # A CP release before the batch call: the node falls back to one IssueToken per peer.
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")


@dataclass
class FakeIdentityCp:
    issuer: TokenIssuer
    server: RunningServer

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    async def stop(self) -> None:
        await self.server.stop(0)


async def start_identity_cp(pki: PkiFixture, issuer: TokenIssuer | None = None) -> FakeIdentityCp:
    issuer = issuer or TokenIssuer()
    material = pki.material(Identity.cp())
    server = await start_server(
        registrations=[lambda s: id_grpc.add_IdentityServiceServicer_to_server(issuer, s)],
        service_names=["xporty.cp.v1.IdentityService"],
        listeners=[Listener("127.0.0.1:0", ReloadableServerCredentials(material).credentials)],
        authz_table=CP_AUTHZ,
    )
    return FakeIdentityCp(issuer, server)


class FaultInjector(grpc.aio.ServerInterceptor):
    """Delays PlaceOrder before the handler, or withholds its response after the handler committed."""

    def __init__(self) -> None:
        self.delay_before_s = 0.0
        self.delay_after_s = 0.0
        self.methods = ("/xporty.trader.v1.TraderService/PlaceOrder",)
        self.entered = asyncio.Event()
        self.completed = 0

    async def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001, ANN201
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method not in self.methods or not handler.unary_unary:
            return handler
        inner = handler.unary_unary

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self.entered.set()
            if self.delay_before_s:
                await asyncio.sleep(self.delay_before_s)
            response = await inner(request, context)
            self.completed += 1
            if self.delay_after_s:
                await asyncio.sleep(self.delay_after_s)  # committed, but the answer is late: lost to the caller
            return response

        return grpc.unary_unary_rpc_method_handler(wrapped, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


FAST_CONFIG = CheckoutConfig(
    peers=PeerConfig(order_timeout_s=0.3, breaker_fail_max=3, breaker_reset_s=0.3),
    in_doubt_after=dt.timedelta(seconds=0.4), reconcile_interval_s=0.05, outbox_interval_s=0.05,
)


ROOMY_CONFIG = replace(FAST_CONFIG, peers=replace(FAST_CONFIG.peers, order_timeout_s=3.0),
                       in_doubt_after=dt.timedelta(seconds=5))
"""For flow tests: a loaded CI machine must not turn a normal checkout into an in-doubt one."""


def imported_offer(exporter: Exporter, offer_id: str = "o1", *, source_price: str = "10.00", fx: str = "2.5",
                   fx_version: int = 1) -> ImportedOfferTerms:
    src = Decimal(source_price)
    return ImportedOfferTerms(
        imported_offer_id=f"{exporter.wl_id}:{offer_id}", exporter_wl=exporter.wl_id, source_offer_id=offer_id,
        source_currency="XPY-A", source_unit_price=src, currency="XPY-B",
        unit_price=(src * Decimal(fx)).quantize(Decimal("0.01")), fx_version=fx_version,
    )


@dataclass
class Importer:
    """A running importer node: Storefront (Checkout/GetCheckout only) over mTLS, loops running."""

    wl_id: str
    url: str
    state: PolicyState
    checkouts: Checkouts
    offers: StaticImportedOffers
    server: RunningServer
    cp: CpChannel
    pki: PkiFixture
    lifecycle: Lifecycle
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    guard: LocalGuard | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def storefront(self, app: str = APP) -> sf_grpc.StorefrontServiceStub:
        channel = secure_channel(self.target, self.pki.material(Identity.app(self.wl_id, app)),
                                 expected=Identity.wl(self.wl_id))
        self.channels.append(channel)
        return sf_grpc.StorefrontServiceStub(channel)

    async def checkout(self, key: str, *, offer: str = "wl-a:o1", qty: int = 1, buyer: str = "member-1",
                       stub: sf_grpc.StorefrontServiceStub | None = None, timeout: float = 10,
                       cid: str | None = None) -> storefront_pb2.Checkout:
        stub = stub or self.storefront()
        metadata = ((correlation.METADATA_KEY, cid),) if cid else ()
        resp = await stub.Checkout(sf_pb.CheckoutRequest(idempotency_key=key, imported_offer_id=offer, quantity=qty,
                                                         buyer_reference=buyer), timeout=timeout, metadata=metadata)
        return resp.checkout

    async def get(self, checkout_id: str) -> storefront_pb2.Checkout:
        resp = await self.storefront().GetCheckout(sf_pb.GetCheckoutRequest(checkout_id=checkout_id), timeout=10)
        return resp.checkout

    async def wait_token(self, audience: str = "wl-a", timeout: float = 5.0) -> None:
        await eventually(lambda: self.checkouts.tokens.get(audience) is not None, timeout=timeout)

    async def count(self, tbl: sa.Table, *where: sa.ColumnElement[bool]) -> int:
        return await self.checkouts.runner.read(
            lambda conn: int(conn.scalar(sa.select(sa.func.count()).select_from(tbl).where(*where))))

    async def stop(self) -> None:
        for ch in self.channels:
            await ch.close()
        await self.lifecycle.stop(0)


async def start_importer(
    pki: PkiFixture,
    url: str,
    cp_target: str,
    exporters: Sequence[Exporter],
    *,
    wl_id: str = "wl-b",
    config: CheckoutConfig = FAST_CONFIG,
    view_overrides: dict[str, Any] | None = None,
    signal_gate: Callable[[str, str], str | None] | None = None,
    start_loops: bool = True,
    with_guard: bool = False,
    keyring: Keyring | None = None,
) -> Importer:
    await asyncio.to_thread(migrate, url)
    clock = SystemClock()
    state = PolicyState(wl_id, clock, dt.timedelta(minutes=10))
    endpoints = {e.wl_id: e.target for e in exporters}
    await state.apply(policy_view(wl_id, 1, list(endpoints), endpoints=endpoints, **(view_overrides or {})))
    material = pki.material(Identity.wl(wl_id))
    settings = NodeSettings(wl_id=wl_id, pki_dir=pki.dir.root, cp_target=cp_target, db_url=url)
    # The async engine is part of the node context; this feature's hot path uses its own TxRunner.
    ctx = NodeContext(settings=settings, engine=db.create_engine(url), clock=clock, tls=material)
    # A restarted importer on the same store must read what it encrypted before: one keyring per store, as the
    # node's key file gives it.
    ctx.keyring = keyring or _KEYRINGS.setdefault(url, ctx.keyring)
    cp = CpChannel(cp_channel_factory(cp_target, reconnect_cap_s=0.3), material, identity=Identity.wl(wl_id))
    guard = None
    if with_guard:  # the node's local imbalance guard, on an empty ledger (as the risk component loads it)
        guard = LocalGuard(state)
        guard.load([])
    client = install_peers(ctx, state, cp, config.peers)
    offers = StaticImportedOffers({o.imported_offer_id: o for o in (imported_offer(e) for e in exporters)},
                                  available=client.peers.available)  # the catalog reads the breaker the same way
    checkouts = install(ctx, state, client, offers, config=config, signal_gate=signal_gate, import_guard=guard)
    checkouts.component.loops.insert(0, client.tokens.run)
    storefront = checkout_storefront(ctx, state, client, checkouts, cp)
    server = await start_server(
        registrations=storefront.component.registrations, service_names=storefront.component.service_names,
        listeners=[Listener("127.0.0.1:0", ReloadableServerCredentials(material).credentials)],
        authz_table=NODE_AUTHZ, local_wl=wl_id,
    )
    lifecycle = Lifecycle(server, [checkouts.component, client.component, storefront.component],
                          closers=[cp.close, ctx.engine.dispose])
    node = Importer(wl_id, url, state, checkouts, offers, server, cp, pki, lifecycle, guard=guard)
    if start_loops:
        lifecycle.start_loops(checkouts.component.loops)
    return node


