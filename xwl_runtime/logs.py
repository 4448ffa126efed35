"""Structured JSON logs with the correlation id on every line and PII and secrets redacted (``xwl_runtime.redact``).

Library modules only call ``logging.getLogger(__name__)``; ``configure_logging`` is called once, at the CLI edge.
Pass structured fields with ``extra={"fields": {...}}``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

from . import correlation, tracing
from .redact import redact, redact_fields


def scrub(text: str) -> str:
    """Redact personal data and secrets from ``text`` (kept as the name callers know; see ``redact.redact``)."""
    return redact(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC), level, logger, msg, correlation_id, trace_id and structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
            "correlation_id": getattr(record, "correlation_id", "") or correlation.get(),
            "trace_id": getattr(record, "trace_id", "") or tracing.current_trace_id(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(redact_fields(fields))
        if record.exc_info:
            payload["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(payload, default=str, separators=(",", ":"))


class CorrelationFilter(logging.Filter):
    """Stamps the current correlation id and trace id on records (so it survives hand-off to other handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", ""):
            record.correlation_id = correlation.get()
        if not getattr(record, "trace_id", ""):
            record.trace_id = tracing.current_trace_id()
        return True


SERVING_LOGGER = "xcwl.serving"
"""Logger of the one line a server writes when it starts serving; shown at INFO even under the default WARNING."""


def configure_logging(level: str = "INFO", *, stream: Any = None) -> None:
    """Install the JSON handler on the root logger. Call once per process, from the CLI."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # An operator starting a server at the default level still learns that (and where) it serves.
    logging.getLogger(SERVING_LOGGER).setLevel(logging.INFO if root.level <= logging.WARNING else root.level)


def log_serving(what: str, *, listeners: dict[str, str], store_url: str, **fields: Any) -> None:
    """The one INFO line of a server that is serving: its listeners, the software version and its store."""
    from importlib.metadata import PackageNotFoundError, version

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        software = version("xporty-cross-wl")
    except PackageNotFoundError:
        software = "unknown"
    try:
        store = make_url(store_url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # a URL we cannot parse is reported by its scheme only
        store = store_url.partition(":")[0]
    logging.getLogger(SERVING_LOGGER).info(
        f"{what} serving", extra={"fields": {"listeners": listeners, "version": software, "store": store, **fields}})
