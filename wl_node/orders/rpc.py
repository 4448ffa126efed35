"""TraderService's order RPCs: verify the caller's JWT, then delegate to the ``OrderDesk``.

The token check runs before anything touches the store, so a refused call (UNAUTHENTICATED / PERMISSION_DENIED)
writes nothing. The one TraderService servicer (``wl_node.trader``) delegates its three order methods here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import grpc

from wl_node.policy.state import PolicyState
from xporty.cp.v1 import identity_pb2
from xporty.trader.v1 import trader_service_pb2 as pb
from xwl_runtime.clock import Clock
from xwl_runtime.pipeline import caller
from xwl_runtime.tokens import TokenVerifier

from .desk import OrderDesk, StillWanted


def policy_token_verifier(state: PolicyState, clock: Clock) -> TokenVerifier:
    """A verifier for tokens addressed to this WL, with the CP keys of the node's current policy view."""

    def keys() -> Sequence[identity_pb2.VerificationKey]:
        view = state.current()
        return list(view.token_keys) if view is not None else []

    return TokenVerifier(keys, state.wl_id, clock)


def _still_wanted(context: grpc.aio.ServicerContext[Any, Any]) -> StillWanted | None:
    """A thread-safe check of the caller's deadline (read once here, on the loop thread)."""
    remaining = context.time_remaining()
    if remaining is None:
        return None
    deadline = time.monotonic() + remaining
    return lambda: time.monotonic() < deadline


class OrderRpc:
    """The three order handlers; construct once per server."""

    def __init__(self, desk: OrderDesk, verifier: TokenVerifier) -> None:
        self._desk = desk
        self._verifier = verifier

    async def PlaceOrder(  # noqa: N802 - gRPC method name
        self,
        request: pb.PlaceOrderRequest,
        context: grpc.aio.ServicerContext[pb.PlaceOrderRequest, pb.PlaceOrderResponse],
    ) -> pb.PlaceOrderResponse:
        ident = caller()
        claims = self._verifier.verify_metadata(context.invocation_metadata(), ident)
        order = await self._desk.place(ident, request, claims, still_wanted=_still_wanted(context))
        return pb.PlaceOrderResponse(order=order)

    async def CancelOrder(  # noqa: N802 - gRPC method name
        self,
        request: pb.CancelOrderRequest,
        context: grpc.aio.ServicerContext[pb.CancelOrderRequest, pb.CancelOrderResponse],
    ) -> pb.CancelOrderResponse:
        ident = caller()
        claims = self._verifier.verify_metadata(context.invocation_metadata(), ident)
        return pb.CancelOrderResponse(order=await self._desk.cancel(ident, request, claims))

    async def GetOrder(  # noqa: N802 - gRPC method name
        self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext[pb.GetOrderRequest, pb.GetOrderResponse]
    ) -> pb.GetOrderResponse:
        ident = caller()
        claims = self._verifier.verify_metadata(context.invocation_metadata(), ident)
        return pb.GetOrderResponse(order=await self._desk.get(ident, request, claims))
