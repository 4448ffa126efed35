"""Correlation ids: one per request chain, carried as gRPC metadata and on every log line."""

from __future__ import annotations

import contextvars
import re
import uuid

METADATA_KEY = "x-correlation-id"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

current_correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def accept_or_new(value: str | None) -> str:
    """The caller's correlation id if well-formed, else a fresh one."""
    if value and _VALID.match(value):
        return value
    return new_correlation_id()


def get() -> str:
    return current_correlation_id.get()


def outbound_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that forwards the current correlation id on an outbound call."""
    cid = current_correlation_id.get()
    return ((METADATA_KEY, cid),) if cid else ()
