"""The server interceptor chain every process installs: correlation id → peer identity → authorization → errors.

The correlation id (the caller's, when well-formed, or a new one) goes back to every caller in the response's
initial metadata (``x-correlation-id``), sent before anything else, so even a refused call can be traced.

grpc.aio server interceptors see only the method and metadata; the peer certificate is in the handler's context.
So one interceptor wraps each handler: it binds the correlation id, derives the caller's identity from the mTLS
certificate (never from a request field), checks the method against the authorization table (default deny), admits
the call against the caller's rate and stream budget when the server has an ``Admission`` (``ratelimit``), runs
the servicer, and translates ``XcwlError`` into a status with details exactly once. Unexpected exceptions become
INTERNAL without internals leaking to the caller.
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

from . import correlation, tracing
from .authz import Rule
from .errors import PermissionDenied, Unauthenticated, XcwlError
from .handlers import WrappingInterceptor, rewrap
from .identity import Identity, Kind, parse_spiffe_id
from .peer_guard import PeerCertificate, PeerGuard, guard_stream, peer_certificate
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


def peer_identity(
    context: grpc.aio.ServicerContext[Any, Any], peer: PeerCertificate | None, *, insecure_dev: bool
) -> Identity | None:
    """The caller's identity: from its verified client certificate ``peer`` (read once per RPC with
    ``peer_certificate``), or from the dev header in plaintext mode."""
    if peer is not None:
        return peer.identity
    if insecure_dev:
        for key, value in context.invocation_metadata() or ():
            if key == DEV_IDENTITY_METADATA_KEY and isinstance(value, str):
                return parse_spiffe_id(value)
    return None


def _metadata_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for k, v in details.invocation_metadata or ():
        if k == key and isinstance(v, str):
            return v
    return None


class ServerPipeline(WrappingInterceptor):
    """Correlation id, identity, authorization and error translation for every RPC of a server."""

    def __init__(
        self,
        table: Mapping[str, Rule],
        *,
        insecure_dev: bool = False,
        peer_guard: PeerGuard | None = None,
        admission: Admission | None = None,
        local_wl: str | None = None,
    ) -> None:
        self._table = dict(table)
        self._local_wl = local_wl
        self._insecure_dev = insecure_dev
        self._guard = peer_guard
        self._admission = admission

    def wrap(self, handler: grpc.RpcMethodHandler[Any, Any],
             handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        rule = self._table.get(method)
        cid = correlation.accept_or_new(_metadata_value(handler_call_details, correlation.METADATA_KEY))
        return rewrap(handler, self._wrap_unary, self._wrap_stream, method, rule, cid)

    def _authorize(self, ident: Identity | None, method: str, rule: Rule | None) -> Identity | None:
        if rule is None:
            raise PermissionDenied(f"{method} is not allowed to anyone", reason="METHOD_NOT_ALLOWED")
        if ident is None:
            if rule.anonymous:
                return None
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
        return ident

    def _identify(
        self, context: grpc.aio.ServicerContext[Any, Any], method: str, rule: Rule | None
    ) -> tuple[Identity | None, PeerCertificate | None]:
        """Read the peer certificate once and authorize its identity; the caller then lets the peer guard refuse
        the certificate (revoked, unrecorded) before any work (not a coroutine: no await on the common path)."""
        peer = peer_certificate(context)
        if peer is not None:
            ident = self._authorize(peer.identity, method, rule)
        else:
            ident = self._authorize(peer_identity(context, None, insecure_dev=self._insecure_dev), method, rule)
        current_caller.set(ident)
        return ident, peer

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

    def _wrap_unary(
        self, behavior: Callable[..., Awaitable[Any]], method: str, rule: Rule | None, cid: str
    ) -> Callable[..., Awaitable[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            correlation.current_correlation_id.set(cid)
            tracing.annotate_correlation(cid)
            try:
                await context.send_initial_metadata(((correlation.METADATA_KEY, cid),))
                ident, peer = self._identify(context, method, rule)
                if peer is not None and self._guard is not None:
                    await self._guard.check(peer)
                with self._admit(context, ident, stream=False):
                    return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as err:  # noqa: BLE001 - translated into a status exactly here
                await self._fail(context, method, err, started)

        return wrapped

    def _wrap_stream(
        self, behavior: Callable[..., Any], method: str, rule: Rule | None, cid: str
    ) -> Callable[..., AsyncIterator[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started = time.perf_counter()
            correlation.current_correlation_id.set(cid)
            tracing.annotate_correlation(cid)
            try:
                await context.send_initial_metadata(((correlation.METADATA_KEY, cid),))
                ident, peer = self._identify(context, method, rule)
                if peer is not None and self._guard is not None:
                    await self._guard.check(peer)
                with self._admit(context, ident, stream=True):
                    result = behavior(request, context)
                    if inspect.isasyncgen(result):
                        if peer is not None and self._guard is not None:
                            result = guard_stream(self._guard, peer, result)
                        async for item in result:
                            yield item
                    else:
                        await result
            except grpc.aio.AbortError:
                raise
            except Exception as err:  # noqa: BLE001 - translated into a status exactly here
                await self._fail(context, method, err, started)

        return wrapped
