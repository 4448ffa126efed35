"""StorefrontService: the local API the WL's own services call (mTLS identities ``spiffe://xporty/wl/<id>/app/<n>``).

Who may call what is the node's authorization table (``wl_node/authz.py``), enforced before any handler runs.
The trader manager's contact is masked in every response unless the caller is an app of this WL named in
``NodeSettings.pii_apps`` (the PII scope). Nothing here logs contact data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc

from wl_node.alerts.rpc import PairAlertsRpc
from wl_node.catalog.imported_view import ImportedView
from wl_node.catalog.offers import OfferBook, offer_to_proto, timestamp
from wl_node.catalog.validation import check_offer_id, validate_offer
from wl_node.catalog.visibility import importable_exporters
from wl_node.checkout.rpc import CheckoutRpc
from wl_node.policy.state import PolicyState
from wl_node.settings import NodeSettings
from xporty.cp.v1 import audit_pb2
from xporty.node.v1 import storefront_pb2
from xporty.node.v1 import storefront_service_pb2 as pb
from xporty.node.v1 import storefront_service_pb2_grpc as pb_grpc
from xwl_runtime.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from xwl_runtime.identity import Kind
from xwl_runtime.pipeline import caller

from .contact_request import ContactRequester
from .pair_watch import PairWatch

SERVICE = "xporty.node.v1.StorefrontService"


class StorefrontServicer(pb_grpc.StorefrontServiceServicer):
    """Thin translation between the local API and the offer book / imported snapshot."""

    def __init__(self, settings: NodeSettings, state: PolicyState, book: OfferBook, view: ImportedView, *,
                 checkouts: CheckoutRpc, alerts: PairAlertsRpc, pairs: PairWatch, contacts: ContactRequester,
                 audit_checkpoint: Callable[[], audit_pb2.AuditCheckpoint | None],
                 viewed: Callable[[str], None]) -> None:
        self._settings = settings
        self._state = state
        self._book = book
        self._view = view
        self._checkouts = checkouts
        self._alerts = alerts
        self.pairs = pairs
        self._contacts = contacts
        self._audit_checkpoint = audit_checkpoint
        self._viewed = viewed

    async def WatchPairAlerts(  # noqa: N802 - gRPC method name
        self, request: pb.WatchPairAlertsRequest,
        context: grpc.aio.ServicerContext[pb.WatchPairAlertsRequest, pb.WatchPairAlertsResponse],
    ) -> AsyncIterator[pb.WatchPairAlertsResponse]:
        async for response in self._alerts.WatchPairAlerts(request, context):
            yield response

    # --- data scope -------------------------------------------------------------------------------------------
    def _unmasked(self) -> bool:
        """Whether the caller holds the PII scope: an app named in ``pii_apps`` (the table admitted only this WL's
        apps and operators)."""
        ident = caller()
        return ident.kind is Kind.APP and ident.name in self._settings.pii_apps

    def _currency(self) -> tuple[str, int]:
        own = self._state.white_label(self._settings.wl_id)
        if own is None:
            raise FailedPrecondition("no policy view yet: this WL's currency is unknown", reason="NO_POLICY_VIEW")
        return own.currency, own.currency_decimals

    # --- exportable offers ----------------------------------------------------------------------------------
    async def PublishOffer(  # noqa: N802 - gRPC method name
        self,
        request: pb.PublishOfferRequest,
        context: grpc.aio.ServicerContext[pb.PublishOfferRequest, pb.PublishOfferResponse],
    ) -> pb.PublishOfferResponse:
        currency, decimals = self._currency()
        row = await self._book.publish(validate_offer(request.offer, currency=currency, decimals=decimals))
        return pb.PublishOfferResponse(offer=offer_to_proto(row))

    async def UpdateOffer(  # noqa: N802 - gRPC method name
        self,
        request: pb.UpdateOfferRequest,
        context: grpc.aio.ServicerContext[pb.UpdateOfferRequest, pb.UpdateOfferResponse],
    ) -> pb.UpdateOfferResponse:
        currency, decimals = self._currency()
        row = await self._book.update(validate_offer(request.offer, currency=currency, decimals=decimals))
        return pb.UpdateOfferResponse(offer=offer_to_proto(row))

    async def WithdrawOffer(  # noqa: N802 - gRPC method name
        self,
        request: pb.WithdrawOfferRequest,
        context: grpc.aio.ServicerContext[pb.WithdrawOfferRequest, pb.WithdrawOfferResponse],
    ) -> pb.WithdrawOfferResponse:
        bad = check_offer_id(request.offer_id, "offer_id")
        if bad:
            raise InvalidArgument(f"offer_id: {bad[0].description}", violations=bad)
        await self._book.withdraw(request.offer_id)
        return pb.WithdrawOfferResponse()

    # --- imported catalog -----------------------------------------------------------------------------------
    async def ListImportedOffers(  # noqa: N802 - gRPC method name
        self,
        request: pb.ListImportedOffersRequest,
        context: grpc.aio.ServicerContext[pb.ListImportedOffersRequest, pb.ListImportedOffersResponse],
    ) -> pb.ListImportedOffersResponse:
        unmasked = self._unmasked()
        offers, token = await self._view.list(
            importable_exporters(self._state), source_wl=request.source_wl, category=request.category,
            text=request.text, page_size=request.page_size, page_token=request.page_token, unmasked=unmasked,
        )
        return pb.ListImportedOffersResponse(offers=offers, next_page_token=token)

    async def GetImportedOffer(  # noqa: N802 - gRPC method name
        self,
        request: pb.GetImportedOfferRequest,
        context: grpc.aio.ServicerContext[pb.GetImportedOfferRequest, pb.GetImportedOfferResponse],
    ) -> pb.GetImportedOfferResponse:
        unmasked = self._unmasked()
        offer = await self._view.get(importable_exporters(self._state), request.imported_offer_id, unmasked=unmasked)
        self._viewed(offer.source_wl)
        return pb.GetImportedOfferResponse(offer=offer)

    async def GetNodeState(  # noqa: N802 - gRPC method name
        self,
        request: pb.GetNodeStateRequest,
        context: grpc.aio.ServicerContext[pb.GetNodeStateRequest, pb.GetNodeStateResponse],
    ) -> pb.GetNodeStateResponse:
        state = storefront_pb2.NodeState(
            wl_id=self._settings.wl_id, policy_version=self._state.version,
            stream_connected=self._state.stream_connected, stale=self._state.is_stale(),
        )
        if self._state.confirmed_at is not None:
            state.confirm_time.CopyFrom(timestamp(self._state.confirmed_at))
        return pb.GetNodeStateResponse(state=state, audit_checkpoint=self._audit_checkpoint())

    async def WatchPairs(  # noqa: N802 - gRPC method name
        self,
        request: pb.WatchPairsRequest,
        context: grpc.aio.ServicerContext[pb.WatchPairsRequest, pb.WatchPairsResponse],
    ) -> AsyncIterator[pb.WatchPairsResponse]:
        async for event in self.pairs.stream():
            yield event

    # --- checkout -----------------------------------------------------------------------------------------
    async def Checkout(  # noqa: N802 - gRPC method name
        self, request: pb.CheckoutRequest, context: grpc.aio.ServicerContext[pb.CheckoutRequest, pb.CheckoutResponse]
    ) -> pb.CheckoutResponse:
        return await self._checkouts.Checkout(request, context)

    async def GetCheckout(  # noqa: N802 - gRPC method name
        self,
        request: pb.GetCheckoutRequest,
        context: grpc.aio.ServicerContext[pb.GetCheckoutRequest, pb.GetCheckoutResponse],
    ) -> pb.GetCheckoutResponse:
        return await self._checkouts.GetCheckout(request, context)

    async def GetTraderContact(  # noqa: N802 - gRPC method name
        self,
        request: pb.GetTraderContactRequest,
        context: grpc.aio.ServicerContext[pb.GetTraderContactRequest, pb.GetTraderContactResponse],
    ) -> pb.GetTraderContactResponse:
        ident = caller()
        if ident.name not in self._settings.pii_apps:
            raise PermissionDenied(f"{ident} does not hold the PII scope", reason="PII_SCOPE_REQUIRED")
        offer = await self._view.get(importable_exporters(self._state), request.imported_offer_id, unmasked=False)
        contact = await self._contacts.request(offer.source_wl, offer.manager.handle, request.purpose)
        return pb.GetTraderContactResponse(contact=contact)
