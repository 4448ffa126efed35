"""StorefrontService's Checkout / GetCheckout handlers; the one Storefront servicer (``wl_node.storefront``)
delegates to them."""

from __future__ import annotations

import grpc

from xporty.node.v1 import storefront_service_pb2 as pb
from xwl_runtime.pipeline import caller

from .service import CheckoutService


class CheckoutRpc:
    """The two handlers; construct once per server."""

    def __init__(self, service: CheckoutService) -> None:
        self._service = service

    async def Checkout(  # noqa: N802 - gRPC method name
        self, request: pb.CheckoutRequest, context: grpc.aio.ServicerContext[pb.CheckoutRequest, pb.CheckoutResponse]
    ) -> pb.CheckoutResponse:
        checkout = await self._service.checkout(caller(), request, caller_remaining_s=context.time_remaining())
        return pb.CheckoutResponse(checkout=checkout)

    async def GetCheckout(  # noqa: N802 - gRPC method name
        self,
        request: pb.GetCheckoutRequest,
        context: grpc.aio.ServicerContext[pb.GetCheckoutRequest, pb.GetCheckoutResponse],
    ) -> pb.GetCheckoutResponse:
        return pb.GetCheckoutResponse(checkout=await self._service.get(caller(), request))
