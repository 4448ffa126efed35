"""The server interceptor every process installs: correlation id → peer identity → authorization → errors → latency.

The correlation id (the caller's, when well-formed, or a new one) goes back to every caller in the response's
initial metadata (``x-correlation-id``), sent before anything else, so even a refused call can be traced.

grpc.aio server interceptors see only the method and metadata; the peer certificate is in the handler's context.
So one interceptor wraps each handler: it binds the correlation id, derives the caller's identity from the mTLS
certificate (never from a request field), checks the method against the authorization table (default deny), admits
the call against the caller's rate and stream budget when the server has an ``Admission`` (``ratelimit``), runs
the servicer, and translates ``XcwlError`` into a status with details exactly once. Unexpected exceptions become
INTERNAL without internals leaking to the caller. With a latency histogram (``metrics.RpcMetrics``) it times every
call it wraps, refusals included, labelled by service, method and final status code.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from prometheus_client import Histogram

from . import correlation, tracing
from .authz import Rule
from .errors import PermissionDenied, Unauthenticated, XcwlError
from .identity import Identity, Kind, parse_spiffe_id
from .metrics import split_method
from .peer_guard import PeerCertificate, PeerGuard, StreamGuard, peer_certificate
from .ratelimit import Admission, peer_address

log = logging.getLogger(__name__)

# Only honoured when a server runs with --insecure-dev: who the plaintext caller claims to be.
DEV_IDENTITY_METADATA_KEY = "x-xcwl-dev-identity"

current_caller: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("caller", default=None)


def caller() -> Identity:
    """The authenticated caller of the current RPC (set by the pipeline before the servicer runs)."""
    ident = current_caller.get()
    if ident is None:
        raise Unauthenticated("no authenticated caller")
    return ident


def _dev_identity(context: grpc.aio.ServicerContext[Any, Any]) -> Identity | None:
    """Who a plaintext caller claims to be (only honoured with --insecure-dev)."""
    for key, value in context.invocation_metadata() or ():
        if key == DEV_IDENTITY_METADATA_KEY and isinstance(value, str):
            return parse_spiffe_id(value)
    return None


def _correlation_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The caller's correlation id when well-formed, else a new one."""
    for key, value in context.invocation_metadata() or ():
        if key == correlation.METADATA_KEY and isinstance(value, str):
            return correlation.accept_or_new(value)
    return correlation.new_correlation_id()


def _code_of(context: grpc.aio.ServicerContext[Any, Any], failed: bool) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "UNKNOWN" if failed else "OK"


class ServerPipeline(grpc.aio.ServerInterceptor):
    """Correlation id, identity, authorization, admission, error translation and latency for every RPC.

    One interceptor, and one wrapped handler per method built on its first call and reused: the per-RPC cost is
    the wrapper's own work, not building closures and handler objects for every call.
    """

    def __init__(
        self,
        table: Mapping[str, Rule],
        *,
        insecure_dev: bool = False,
        peer_guard: PeerGuard | None = None,
        admission: Admission | None = None,
        latency: Histogram | None = None,
        local_wl: str | None = None,
    ) -> None:
        self._table = dict(table)
        self._local_wl = local_wl
        self._insecure_dev = insecure_dev
        self._guard = peer_guard
        self._streams = StreamGuard(peer_guard) if peer_guard is not None else None
        self._admission = admission
        self._latency = latency
        self._latency_children: dict[tuple[str, str, str], Histogram] = {}
        self._handlers: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._handlers.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method)
        self._handlers[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        rule = self._table.get(method)
        service, name = split_method(method)
        common: dict[str, Any] = {"request_deserializer": handler.request_deserializer,
                                  "response_serializer": handler.response_serializer}
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method, rule, service, name), **common)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method, rule, service, name), **common)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary, method, rule, service, name), **common)
        assert handler.stream_stream is not None  # a handler has exactly one of the four behaviours
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(handler.stream_stream, method, rule, service, name), **common)

    async def _enter(
        self, context: grpc.aio.ServicerContext[Any, Any], method: str, rule: Rule | None
    ) -> tuple[Identity | None, PeerCertificate | None]:
        """Correlation id bound and returned; the caller identified, authorized and its certificate checked."""
        cid = _correlation_id(context)
        correlation.current_correlation_id.set(cid)
        tracing.annotate_correlation(cid)
        await context.send_initial_metadata(((correlation.METADATA_KEY, cid),))
        peer = peer_certificate(context)  # the one read of the verified TLS auth context
        ident = peer.identity if peer is not None else _dev_identity(context) if self._insecure_dev else None
        self._authorize(ident, method, rule)
        current_caller.set(ident)
        if peer is not None and self._guard is not None:
            await self._guard.check(peer)
        return ident, peer

    def _authorize(self, ident: Identity | None, method: str, rule: Rule | None) -> None:
        if rule is None:
            raise PermissionDenied(f"{method} is not allowed to anyone", reason="METHOD_NOT_ALLOWED")
        if ident is None:
            if rule.anonymous:
                return
            raise Unauthenticated("a client certificate naming an XporY identity is required", reason="NO_IDENTITY")
        if ident.kind not in rule.kinds:
            raise PermissionDenied(
                f"{ident.spiffe_id} may not call {method}",
                reason="IDENTITY_NOT_ALLOWED",
                metadata={"caller": ident.spiffe_id, "method": method},
            )
        if rule.same_wl and ident.kind is Kind.APP and ident.wl_id != self._local_wl:
            raise PermissionDenied(f"{ident} is not an app of {self._local_wl}", reason="NOT_THIS_WL",
                                   metadata={"caller": ident.spiffe_id})

    def _admit(
        self, context: grpc.aio.ServicerContext[Any, Any], ident: Identity | None, *, stream: bool
    ) -> contextlib.AbstractContextManager[None]:
        """Rate limit (and, for streams, a stream slot) of the caller, before the servicer runs."""
        if self._admission is None:
            return contextlib.nullcontext()
        key = ident.spiffe_id if ident is not None else peer_address(context.peer())
        self._admission.admit(key, anonymous=ident is None)
        return self._admission.stream(key) if stream else contextlib.nullcontext()

    async def _fail(
        self, context: grpc.aio.ServicerContext[Any, Any], method: str, err: Exception, started: float
    ) -> None:
        if isinstance(err, XcwlError):
            status = err.to_status()
            log.info(
                "rpc refused",
                extra={"fields": {"method": method, "code": err.code.name, "reason": err.reason,
                                  "ms": round((time.perf_counter() - started) * 1000, 3)}},
            )
            await context.abort(status.code, status.details, status.trailing_metadata)
        log.exception("rpc failed", extra={"fields": {"method": method}})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    def _observe(
        self, context: grpc.aio.ServicerContext[Any, Any], service: str, name: str, started: float, failed: bool
    ) -> None:
        if self._latency is not None:
            labels = (service, name, _code_of(context, failed))
            child = self._latency_children.get(labels)
            if child is None:  # ``labels()`` takes a lock and builds a key on every call: once per label set
                child = self._latency_children[labels] = self._latency.labels(*labels)
            child.observe(time.perf_counter() - started)

    def _wrap_unary(
        self, behavior: Callable[..., Awaitable[Any]], method: str, rule: Rule | None, service: str, name: str
    ) -> Callable[..., Awaitable[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started, failed = time.perf_counter(), True
            try:
                ident, _ = await self._enter(context, method, rule)
                with self._admit(context, ident, stream=False):
                    result = await behavior(request, context)
                failed = False
                return result
            except grpc.aio.AbortError:
                raise
            except Exception as err:  # noqa: BLE001 - translated into a status exactly here
                await self._fail(context, method, err, started)
            finally:
                self._observe(context, service, name, started, failed)

        return wrapped

    def _wrap_stream(
        self, behavior: Callable[..., Any], method: str, rule: Rule | None, service: str, name: str
    ) -> Callable[..., AsyncIterator[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started, failed = time.perf_counter(), True
            try:
                ident, peer = await self._enter(context, method, rule)
                with self._admit(context, ident, stream=True):
                    result = behavior(request, context)
                    if inspect.isasyncgen(result):
                        if peer is not None and self._streams is not None:
                            result = self._streams.guard(peer, result)
                        async for item in result:
                            yield item
                    else:
                        await result
                failed = False
            except grpc.aio.AbortError:
                raise
            except Exception as err:  # noqa: BLE001 - translated into a status exactly here
                await self._fail(context, method, err, started)
            finally:
                self._observe(context, service, name, started, failed)

        return wrapped
