"""StorefrontService's Checkout / GetCheckout handlers; the Storefront servicer (catalog feature) delegates::

    async def Checkout(self, request, context):
        return await self._checkout.Checkout(request, context)

``CheckoutStorefrontServicer`` serves only these two methods (tests, bench, a node without a catalog).
"""

from __future__ import annotations

import grpc

from xporty.node.v1 import storefront_service_pb2 as pb
from xporty.node.v1 import storefront_service_pb2_grpc as pb_grpc
from xwl_runtime.pipeline import caller

from .service import CheckoutService

SERVICE = "xporty.node.v1.StorefrontService"


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


class CheckoutStorefrontServicer(pb_grpc.StorefrontServiceServicer):
    """A StorefrontService serving only Checkout and GetCheckout."""

    def __init__(self, rpc: CheckoutRpc) -> None:
        self._rpc = rpc

    async def Checkout(  # noqa: N802
        self, request: pb.CheckoutRequest, context: grpc.aio.ServicerContext[pb.CheckoutRequest, pb.CheckoutResponse]
    ) -> pb.CheckoutResponse:
        return await self._rpc.Checkout(request, context)

    async def GetCheckout(  # noqa: N802
        self,
        request: pb.GetCheckoutRequest,
        context: grpc.aio.ServicerContext[pb.GetCheckoutRequest, pb.GetCheckoutResponse],
    ) -> pb.GetCheckoutResponse:
        return await self._rpc.GetCheckout(request, context)
