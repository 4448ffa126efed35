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
(``xcwl.correlation_id``) and the log formatter writes the current ``trace_id`` on every line. Every transaction
on an engine built by ``xwl_runtime.db`` while tracing is on is a ``db.transaction`` child span of the request that
ran it, commit included (``trace_transactions``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

if TYPE_CHECKING:
    import sqlalchemy as sa
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
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes: dict[str, Any] = {}
    if not environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = default_service_name
    provider = new_provider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def new_provider(**kwargs: Any) -> TracerProvider:
    """The SDK tracer provider with this module's trace id source (``_PresetTraceIds``), so a server can make the
    root sampling decision of an incoming call itself (``_root_short_path``); ``kwargs`` go to the provider
    (resource, sampler; the sampler defaults to the one ``OTEL_TRACES_SAMPLER`` names)."""
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider(id_generator=_preset_trace_ids(), **kwargs)


@functools.cache
def _preset_trace_ids() -> Any:
    """The process's ``_PresetTraceIds`` (an SDK ``IdGenerator``; the class is built on first use so the SDK is
    imported only when tracing is on)."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class _PresetTraceIds(RandomIdGenerator):
        """Random ids, except that the next root trace id can be chosen in advance for the current context: the
        server decided to sample a root call under that id, and the span the instrumentation starts must carry the
        same one (a fresh id would be sampled again: a ratio ``p`` would become ``p²``)."""

        def generate_trace_id(self) -> int:
            preset = _NEXT_TRACE_ID.get()
            if preset:
                _NEXT_TRACE_ID.set(0)
                return preset
            return super().generate_trace_id()

    return _PresetTraceIds()


_NEXT_TRACE_ID: contextvars.ContextVar[int] = contextvars.ContextVar("xcwl_next_trace_id", default=0)


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
    A unary call without ``traceparent`` starts a trace: the sampler's root decision is made first
    (``_root_decision``), and a trace it leaves out runs under an unsampled root context of its own, the same
    context the SDK would have made.
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
                _unsampled_short_path(handler.unary_unary, wrapped.unary_unary, method),
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


def _unsampled_short_path(plain: Callable[..., Awaitable[Any]], traced: Callable[..., Awaitable[Any]],
                          method: str) -> Callable[..., Awaitable[Any]]:
    async def behave(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        metadata = context.invocation_metadata()
        if _has_traceparent(metadata):
            parent = _unsampled_parent(metadata)
            if parent is None:
                return await traced(request, context)
        else:
            parent = _root_decision(method)
            if parent is None:
                return await traced(request, context)
        token = otel_context.attach(parent)
        try:
            return await plain(request, context)
        finally:
            otel_context.detach(token)

    return behave


def _has_traceparent(metadata: Any) -> bool:
    return any(key == "traceparent" for key, _ in metadata or ())


def _root_decision(method: str) -> Any:
    """For a call that starts a trace: the context of an unsampled root span when the sampler leaves the trace out,
    else None with the chosen trace id preset for the span the instrumentation starts next.

    This is the decision the SDK makes when the instrumentation starts the server span (same sampler, span name
    and kind, a fresh random trace id), made before the instrumentation's per-call work, which a trace no one
    records does not need. Only with ``_PresetTraceIds`` (providers from ``new_provider``); otherwise None and
    nothing preset, and the instrumentation decides as usual.
    """
    provider = _sdk_provider()
    ids = _preset_trace_ids() if provider is not None else None
    if provider is None or provider.id_generator is not ids:
        return None
    trace_id = ids.generate_trace_id()
    decision = provider.sampler.should_sample(None, trace_id, method, trace.SpanKind.SERVER).decision
    if decision.is_recording():  # type: ignore[no-untyped-call]
        _NEXT_TRACE_ID.set(trace_id)
        return None
    flags = trace.TraceFlags.RANDOM_TRACE_ID if ids.is_trace_id_random() else trace.TraceFlags.DEFAULT
    root = trace.SpanContext(trace_id, ids.generate_span_id(), is_remote=False, trace_flags=trace.TraceFlags(flags))
    return trace.set_span_in_context(trace.NonRecordingSpan(root))


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


_TX_SPAN_KEY = "xcwl.tx_span"
"""Where an open transaction span waits, in the DBAPI connection's ``info`` (shared by the Connection and the pool's
connection record)."""


def trace_transactions(engine: sa.Engine) -> None:
    """Make every transaction on ``engine`` (an async engine's ``sync_engine`` too) a ``db.transaction`` child span of
    the span current at BEGIN, with ``db.system`` and ``db.outcome`` (commit / rollback). The span ends when the
    connection goes back to the pool, so the COMMIT itself (the WAL fsync, the PostgreSQL round trip) is inside it.

    Registered only while tracing is on (an engine built without tracing pays no event hook); a transaction outside
    any request (a background loop) or inside a trace the sampler left out makes no span. SQLAlchemy runs an async
    engine's events in the awaiting task's context, so the parent is the RPC's span."""
    provider = _sdk_provider()
    if provider is None:
        return
    from sqlalchemy import event  # the storage modules import SQLAlchemy anyway; tracing alone does not need it

    tracer = _tracer(provider)
    attributes = {"db.system": engine.dialect.name}

    def end(info: dict[Any, Any]) -> None:
        span = info.pop(_TX_SPAN_KEY, None)
        if span is not None:
            span.end()

    def begin(conn: sa.Connection) -> None:
        end(conn.info)  # a connection kept across transactions: the previous one is over
        parent = trace.get_current_span().get_span_context()
        if parent.is_valid and parent.trace_flags.sampled:
            conn.info[_TX_SPAN_KEY] = tracer.start_span("db.transaction", attributes=attributes)

    def outcome(name: str) -> Callable[[sa.Connection], None]:
        def mark(conn: sa.Connection) -> None:
            span = conn.info.get(_TX_SPAN_KEY)
            if span is not None:
                span.set_attribute("db.outcome", name)
        return mark

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        end(record.info)

    event.listen(engine, "begin", begin)
    event.listen(engine, "commit", outcome("commit"))
    event.listen(engine, "rollback", outcome("rollback"))
    event.listen(engine.pool, "checkin", checkin)
