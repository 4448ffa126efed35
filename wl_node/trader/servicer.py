"""TraderService, the peer API: the offer feed (ListOffers, WatchOffers), the order RPCs, and the disclosure of
a clear trader contact to a granted peer (GetTraderContact, ``wl_node.privacy.disclosure``).

Every feed call is filtered on THIS side from the caller's mTLS identity and this node's pair policy
(``wl_node.catalog.visibility.export_grant``): a peer that asks anyway gets PERMISSION_DENIED and no offer. The
feed itself (cursor, export delay, tombstones) is ``wl_node.catalog.feed``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from wl_node.catalog.feed import Cursor, FeedNotifier, latest_sequence, next_maturity, read_page
from wl_node.catalog.visibility import export_grant
from wl_node.orders.rpc import OrderRpc
from wl_node.policy.state import PolicyState
from wl_node.privacy.disclosure import ContactDisclosure
from xporty.trader.v1 import trader_service_pb2 as pb
from xporty.trader.v1 import trader_service_pb2_grpc as pb_grpc
from xwl_runtime.clock import Clock
from xwl_runtime.errors import FailedPrecondition
from xwl_runtime.pipeline import caller

log = logging.getLogger(__name__)

SERVICE = "xporty.trader.v1.TraderService"
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 500, 5000
WATCH_HEARTBEAT_S = 10.0
"""An idle WatchOffers stream sends a heartbeat this often (liveness for the importer, which pulls only when a
beat is missed; ``NodeSettings.offer_watch_heartbeat``)."""


class TraderServicer(pb_grpc.TraderServiceServicer):
    """The one TraderService servicer: the catalog's offer feed, the order desk's RPCs, the contact disclosure."""

    def __init__(self, engine: AsyncEngine, state: PolicyState, clock: Clock, notifier: FeedNotifier,
                 orders: OrderRpc, disclosures: ContactDisclosure, *, heartbeat_s: float = WATCH_HEARTBEAT_S
                 ) -> None:
        self._engine = engine
        self._disclosures = disclosures
        self._state = state
        self._clock = clock
        self._notifier = notifier
        self._orders = orders
        self._heartbeat_s = heartbeat_s

    async def ListOffers(  # noqa: N802 - gRPC method name
        self,
        request: pb.ListOffersRequest,
        context: grpc.aio.ServicerContext[pb.ListOffersRequest, pb.ListOffersResponse],
    ) -> pb.ListOffersResponse:
        grant = export_grant(self._state, caller().wl_id)
        cursor = Cursor.decode(request.cursor, grant)
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        async with self._engine.connect() as conn:
            page = await read_page(conn, grant, cursor, self._clock.now, size)
        resp = pb.ListOffersResponse(next_cursor=page.next_cursor.encode(), has_more=page.has_more)
        add = resp.changes.add
        for row in page.rows:
            if row.withdrawn:
                add(offer_id=row.offer_id, tombstone=True, change_sequence=row.change_sequence)
                continue
            change = add(offer_id=row.offer_id, change_sequence=row.change_sequence)
            offer = change.offer
            offer.MergeFromString(row.payload)  # stored serialized: parsing in C beats rebuilding in Python
            offer.stock = row.stock
            offer.revision = row.revision
        return resp

    async def WatchOffers(  # noqa: N802 - gRPC method name
        self,
        request: pb.WatchOffersRequest,
        context: grpc.aio.ServicerContext[pb.WatchOffersRequest, pb.WatchOffersResponse],
    ) -> AsyncIterator[pb.WatchOffersResponse]:
        importer = caller().wl_id
        grant = export_grant(self._state, importer)
        cursor = Cursor.decode(request.cursor, grant)
        async with self._engine.connect() as conn:
            latest = max(await latest_sequence(conn), self._notifier.latest)
        self._notifier.bump(latest)
        sent = cursor.seq
        last_beat = self._clock.monotonic()
        maturity = None
        while not self._notifier.closing:
            now = self._clock.now()
            matured = maturity is not None and maturity <= now
            beat = self._clock.monotonic() - last_beat >= self._heartbeat_s
            latest = self._notifier.latest
            if latest > sent or matured or beat:
                yield pb.WatchOffersResponse(latest_sequence=latest, heartbeat=not (latest > sent or matured))
                sent, last_beat = max(sent, latest), self._clock.monotonic()
            maturity = None
            if grant.delay:  # only a delayed grant has offers maturing later: no store read for the others
                async with self._engine.connect() as conn:
                    maturity = await next_maturity(conn, grant, now)
            timeout = self._heartbeat_s
            if maturity is not None:
                timeout = min(timeout, max(0.0, (maturity - self._clock.now()).total_seconds()) + 0.001)
            await self._notifier.wait(timeout)
            if self._notifier.closing:
                return
            # Re-check on every wake: a policy change ends the stream (PERMISSION_DENIED or CURSOR_EXPIRED).
            fresh = export_grant(self._state, importer)
            if fresh.fingerprint != grant.fingerprint:
                raise FailedPrecondition("the visibility terms changed; restart with a full sync",
                                         reason="CURSOR_EXPIRED")

    async def PlaceOrder(  # noqa: N802 - gRPC method name
        self,
        request: pb.PlaceOrderRequest,
        context: grpc.aio.ServicerContext[pb.PlaceOrderRequest, pb.PlaceOrderResponse],
    ) -> pb.PlaceOrderResponse:
        return await self._orders.PlaceOrder(request, context)

    async def CancelOrder(  # noqa: N802 - gRPC method name
        self,
        request: pb.CancelOrderRequest,
        context: grpc.aio.ServicerContext[pb.CancelOrderRequest, pb.CancelOrderResponse],
    ) -> pb.CancelOrderResponse:
        return await self._orders.CancelOrder(request, context)

    async def GetOrder(  # noqa: N802 - gRPC method name
        self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext[pb.GetOrderRequest, pb.GetOrderResponse]
    ) -> pb.GetOrderResponse:
        return await self._orders.GetOrder(request, context)

    async def GetTraderContact(  # noqa: N802 - gRPC method name
        self,
        request: pb.GetTraderContactRequest,
        context: grpc.aio.ServicerContext[pb.GetTraderContactRequest, pb.GetTraderContactResponse],
    ) -> pb.GetTraderContactResponse:
        contact = await self._disclosures.disclose(caller().wl_id, request.handle, request.purpose)
        return pb.GetTraderContactResponse(contact=contact)
