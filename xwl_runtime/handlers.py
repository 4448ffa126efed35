"""Re-wrapping a gRPC method handler's behaviour, the one piece of boilerplate every server interceptor needs.

grpc.aio server interceptors get a ``RpcMethodHandler`` with exactly one of four behaviours set (unary or
streaming request × unary or streaming response); ``rewrap`` returns the same handler with that behaviour
wrapped, keeping its (de)serializers, and ``WrappingInterceptor`` is the interceptor that does it for each call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

Behavior = Callable[..., Any]


def rewrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    unary: Callable[..., Behavior],
    stream: Callable[..., Behavior],
    *args: Any,
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its behaviour wrapped by ``unary(behavior, *args)`` (unary response) or
    ``stream(behavior, *args)`` (streaming response)."""
    deserializer, serializer = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary, *args), deserializer, serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream(handler.unary_stream, *args), deserializer, serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary, *args), deserializer, serializer)
    assert handler.stream_stream is not None  # a handler has exactly one of the four behaviours
    return grpc.stream_stream_rpc_method_handler(stream(handler.stream_stream, *args), deserializer, serializer)


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that wraps the behaviour of each call's handler (subclasses implement ``wrap``)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self.wrap(handler, handler_call_details)

    def wrap(self, handler: grpc.RpcMethodHandler[Any, Any],
             details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        """``handler`` with its behaviour wrapped for the call ``details`` describes (usually via ``rewrap``)."""
        raise NotImplementedError
