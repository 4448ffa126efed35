"""Distributed tracing with OpenTelemetry: configured only by the standard ``OTEL_*`` variables, off otherwise.

``configure_tracing(environ)`` is called once by the CLI edge. It installs the SDK's tracer provider with a
batching OTLP/gRPC exporter when the environment asks for one (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER=otlp``; ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none`` win). The exporter, the batch processor and the resource read their own ``OTEL_*``
settings (endpoint, headers, ``OTEL_EXPORTER_OTLP_INSECURE``, ``OTEL_SERVICE_NAME``, ``OTEL_BSP_*``).

Servers and clients get the ``opentelemetry-instrumentation-grpc`` aio interceptors only while tracing is on, so
a process without ``OTEL_*`` pays nothing: it imports only the small OpenTelemetry API, never the SDK, the
exporter or the instrumentation (a few MiB of resident memory in every node). Context crosses every hop as W3C
``traceparent`` metadata (the default propagator); the pipeline stamps the correlation id on the server span
(``xcwl.correlation_id``) and the log formatter writes the current ``trace_id`` on every line.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

_SDK_TRACE = "opentelemetry.sdk.trace"

CORRELATION_ATTRIBUTE = "xcwl.correlation_id"
"""Span attribute carrying the request chain's correlation id."""

_TRACER_NAME = "xporty.cross_wl"


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` asks for traces to be exported over OTLP."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()}
    if "none" in exporters:
        return False
    if "otlp" in exporters:
        return True
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_tracing(environ: Mapping[str, str], *, default_service_name: str) -> TracerProvider | None:
    """Install the SDK tracer provider with an OTLP exporter when ``environ`` asks for it; None = tracing off.

    Call once per process, from the CLI; ``shutdown_tracing`` flushes the spans still batched.
    """
    if not wanted(environ):
        return None
    # Imported here: the SDK and the exporter (with its protobuf modules) are never needed without tracing.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes: dict[str, Any] = {}
    if not environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = default_service_name
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def _sdk_provider() -> TracerProvider | None:
    """The installed SDK tracer provider, or None (the SDK module is never imported while tracing is off)."""
    sdk = sys.modules.get(_SDK_TRACE)
    if sdk is None:
        return None
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, sdk.TracerProvider) else None


def shutdown_tracing() -> None:
    """Flush and stop the exporter (no-op when tracing is off)."""
    provider = _sdk_provider()
    if provider is not None:
        provider.shutdown()


def force_flush() -> bool:
    """Export the spans still batched now (True when done or tracing is off)."""
    provider = _sdk_provider()
    return provider.force_flush() if provider is not None else True


def enabled() -> bool:
    """True once ``configure_tracing`` installed the SDK provider in this process."""
    return _sdk_provider() is not None


_QUIET_SERVICES = ("/grpc.health.", "/grpc.reflection.")
"""Services whose calls make no span (health probes, reflection)."""


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The aio server interceptor (health and reflection excluded) while tracing is on, else none."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [_PerMethodServerTracing(aio_server_interceptor())]  # type: ignore[no-untyped-call]


class _MethodDetails(NamedTuple):
    """The call details the instrumentation's handler wrapper reads: the method name only."""

    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


class _PerMethodServerTracing(grpc.aio.ServerInterceptor):
    """The instrumentation's aio server interceptor, asked once per method rather than once per call, with a
    short path for calls inside a trace the caller's sampler left out.

    Per call the instrumentation would evaluate its filter and build a new handler around the method's behaviour;
    the handler it builds depends on the method only (the span name; metadata, peer and trace context are read from
    the call's own context when the call runs), so it is built on a method's first call and reused, as the pipeline
    does. Health and reflection calls pass through untraced (a prefix test).

    A unary call whose ``traceparent`` says "not sampled" would get a span no one records (every parent-based
    sampler follows the caller's decision), at the full cost of building it; instead the caller's context is
    attached as it is, so the trace id still reaches the logs and every outgoing call (``_UnsampledClientPath``).
    """

    def __init__(self, inner: grpc.aio.ServerInterceptor) -> None:
        self._inner = inner
        self._handlers: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_QUIET_SERVICES):
            return handler
        cached = self._handlers.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]

        async def this_handler(_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
            return handler

        wrapped = await self._inner.intercept_service(this_handler, _MethodDetails(method))  # type: ignore[arg-type]
        if wrapped is None:
            return handler
        if handler.unary_unary is not None and wrapped.unary_unary is not None:
            wrapped = grpc.unary_unary_rpc_method_handler(
                _unsampled_short_path(handler.unary_unary, wrapped.unary_unary),
                request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
        self._handlers[method] = (handler, wrapped)
        return wrapped


def _unsampled_parent(metadata: Any) -> Any:
    """The OpenTelemetry context of the caller when its ``traceparent`` is well-formed and not sampled, else None."""
    for key, value in metadata or ():
        if key == "traceparent":
            if not isinstance(value, str) or len(value) < 2 or value[-2:] not in _UNSAMPLED_FLAGS:
                return None
            ctx = _propagate().extract({k: v for k, v in metadata if isinstance(v, str)})
            return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None
    return None


@functools.cache
def _propagate() -> Any:
    """``opentelemetry.propagate`` (the configured propagators), imported on first use: while tracing is off no
    process loads it."""
    from opentelemetry import propagate

    return propagate


_UNSAMPLED_FLAGS = frozenset(f"{flags:02x}" for flags in range(0, 256, 2))
"""W3C trace flags without the sampled bit (0x01)."""


def _unsampled_short_path(plain: Callable[..., Awaitable[Any]], traced: Callable[..., Awaitable[Any]]
                          ) -> Callable[..., Awaitable[Any]]:
    async def behave(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        parent = _unsampled_parent(context.invocation_metadata())
        if parent is None:
            return await traced(request, context)
        token = otel_context.attach(parent)
        try:
            return await plain(request, context)
        finally:
            otel_context.detach(token)

    return behave


class _UnsampledClientPath(grpc.aio.UnaryUnaryClientInterceptor):
    """The instrumentation's unary client interceptor, except inside an unsampled trace: there it would build a
    span no one records; the current context is propagated as it is (W3C ``traceparent``, sampled flag off)."""

    def __init__(self, inner: grpc.aio.UnaryUnaryClientInterceptor) -> None:
        self._inner = inner

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryUnaryCall[Any, Any]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        current = trace.get_current_span().get_span_context()
        if not current.is_valid or current.trace_flags.sampled:
            return await self._inner.intercept_unary_unary(continuation, client_call_details, request)
        carrier: dict[str, str] = {}
        _propagate().inject(carrier)
        metadata = grpc.aio.Metadata.from_tuple((
            *((k, v) for k, v in client_call_details.metadata or () if k not in carrier), *carrier.items()))
        return await continuation(grpc.aio.ClientCallDetails(
            client_call_details.method, client_call_details.timeout, metadata, client_call_details.credentials,
            client_call_details.wait_for_ready), request)


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """The aio client interceptors (they inject ``traceparent``) while tracing is on, else none; unary calls inside
    an unsampled trace take ``_UnsampledClientPath``."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return [_UnsampledClientPath(i) if isinstance(i, grpc.aio.UnaryUnaryClientInterceptor) else i
            for i in aio_client_interceptors()]  # type: ignore[no-untyped-call]


def annotate_correlation(correlation_id: str) -> None:
    """Put the correlation id on the current span (cheap no-op when nothing records)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(CORRELATION_ATTRIBUTE, correlation_id)


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, or "" outside a sampled trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


@functools.lru_cache(maxsize=1)
def _tracer(provider: trace.TracerProvider) -> trace.Tracer:
    """The tracer of ``provider`` (looked up once per provider, not once per span)."""
    return provider.get_tracer(_TRACER_NAME)


@contextlib.contextmanager
def span(name: str, **attributes: str | int) -> Iterator[None]:
    """A child span of the current one (e.g. a DB transaction); nothing happens while tracing is off, or inside a
    trace the sampler left out (every standard sampler decides a child as its parent: parent-based ones follow the
    parent's flag, the ratio sampler hashes the same trace id), so an unsampled request pays no span at all."""
    provider = _sdk_provider()
    if provider is None:
        yield
        return
    parent = trace.get_current_span().get_span_context()
    if parent.is_valid and not parent.trace_flags.sampled:
        yield
        return
    with _tracer(provider).start_as_current_span(name, attributes=attributes):
        yield
