"""Typed errors of the WL-service SDK, decoded once from a failed gRPC call.

Exception tree (each class is one gRPC status code; ``reason`` is the ``google.rpc.ErrorInfo`` reason the server
chose, e.g. ``OFFER_NOT_FOUND``, ``IDEMPOTENCY_KEY_REUSED``, ``PAIR_PAUSED``)::

    SdkError
    └── ApiError                      a call the server (or the transport) refused
        ├── InvalidArgumentError      INVALID_ARGUMENT (``violations``: google.rpc.BadRequest)
        ├── UnauthenticatedError      UNAUTHENTICATED
        ├── PermissionDeniedError     PERMISSION_DENIED
        ├── NotFoundError             NOT_FOUND
        ├── AlreadyExistsError        ALREADY_EXISTS
        ├── FailedPreconditionError   FAILED_PRECONDITION
        ├── AbortedError              ABORTED (``retry_delay``: google.rpc.RetryInfo)
        ├── ResourceExhaustedError    RESOURCE_EXHAUSTED (``retry_delay``: google.rpc.RetryInfo)
        ├── UnavailableError          UNAVAILABLE (node down, or it did not prove the expected WL)
        ├── DeadlineExceededError     DEADLINE_EXCEEDED
        └── InternalError             anything else (INTERNAL, UNKNOWN, …)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import grpc
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""Trailer carrying the serialized ``google.rpc.Status`` with the error details."""


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field (from ``google.rpc.BadRequest``)."""

    field: str
    description: str


class SdkError(Exception):
    """Base of every error this SDK raises."""


class ApiError(SdkError):
    """A failed call: the status code, the server's message, its ErrorInfo reason and details."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        violations: tuple[FieldViolation, ...] = (),
        retry_delay: dt.timedelta | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}" + (f" ({reason})" if reason and reason != code.name else ""))
        self.code = code
        self.message = message
        self.reason = reason
        """ErrorInfo reason (domain ``xporty``); empty when the failure came from the transport."""
        self.metadata: dict[str, str] = dict(metadata or {})
        """ErrorInfo metadata, e.g. ``{"retry_after_ms": "250"}``."""
        self.violations = violations
        """Invalid fields of the request (INVALID_ARGUMENT only)."""
        self.retry_delay = retry_delay
        """How long the server asks the caller to wait before retrying (google.rpc.RetryInfo), if it said."""


class InvalidArgumentError(ApiError):
    """The request is malformed; fix it (``violations`` names the fields), do not retry as is."""


class UnauthenticatedError(ApiError):
    """The caller's certificate or token was not accepted."""


class PermissionDeniedError(ApiError):
    """The caller may not do this (e.g. an operator writing, an app of another WL)."""


class NotFoundError(ApiError):
    """The offer or checkout does not exist (for this caller)."""


class AlreadyExistsError(ApiError):
    """The id is taken (e.g. publishing an offer id twice)."""


class FailedPreconditionError(ApiError):
    """The system is not in a state that allows the call (pair paused or disabled, offer unavailable, limit)."""


class AbortedError(ApiError):
    """A concurrent operation got in the way; retrying with the same idempotency key is safe."""


class ResourceExhaustedError(ApiError):
    """Over a rate limit or stream cap; wait ``retry_delay`` before retrying."""


class UnavailableError(ApiError):
    """The node could not be reached, or it did not prove the expected WL identity."""


class DeadlineExceededError(ApiError):
    """The deadline passed before the node answered (the call may or may not have taken effect)."""


class InternalError(ApiError):
    """An unexpected failure on the server."""


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def _status_of(err: grpc.RpcError) -> status_pb2.Status | None:
    # Runtime trailers are (key, value) pairs (sync tuple or aio Metadata); the stubs' _Metadatum is not iterable.
    trailers = cast(
        "Iterable[tuple[str, str | bytes]] | None",
        err.trailing_metadata() if hasattr(err, "trailing_metadata") else None,
    )
    for key, value in trailers or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def from_rpc_error(err: grpc.RpcError) -> ApiError:
    """The typed error for a failed call, with ErrorInfo, BadRequest and RetryInfo decoded from its status."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = (err.details() if hasattr(err, "details") else str(err)) or ""
    reason = ""
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    retry_delay: dt.timedelta | None = None
    status = _status_of(err)
    for detail in status.details if status is not None else ():
        # types-protobuf: Message.DESCRIPTOR may be the upb Descriptor, which Any.Is accepts at runtime.
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) and not reason:  # type: ignore[arg-type]
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):  # type: ignore[arg-type]
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):  # type: ignore[arg-type]
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_delay = retry.retry_delay.ToTimedelta()
    cls = _BY_CODE.get(code, InternalError)
    return cls(code, message, reason=reason, metadata=metadata, violations=tuple(violations), retry_delay=retry_delay)
