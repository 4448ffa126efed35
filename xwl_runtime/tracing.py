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
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import grpc
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


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The aio server interceptor (health and reflection excluded) while tracing is on, else none."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    quiet = filters.any_of(filters.service_prefix("grpc.health"), filters.service_prefix("grpc.reflection"))
    return [aio_server_interceptor(filter_=filters.negate(quiet))]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """The aio client interceptors (they inject ``traceparent``) while tracing is on, else none."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]


def annotate_correlation(correlation_id: str) -> None:
    """Put the correlation id on the current span (cheap no-op when nothing records)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(CORRELATION_ATTRIBUTE, correlation_id)


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, or "" outside a sampled trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


@contextlib.contextmanager
def span(name: str, **attributes: str | int) -> Iterator[None]:
    """A child span of the current one (e.g. a DB transaction); nothing happens while tracing is off."""
    if not enabled():
        yield
        return
    with trace.get_tracer(_TRACER_NAME).start_as_current_span(name, attributes=attributes):
        yield
