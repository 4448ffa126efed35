"""Domain errors and their one translation into gRPC statuses.

Exception tree (every class carries the gRPC code it maps to)::

    XcwlError
    ├── InvalidArgument        INVALID_ARGUMENT (+ google.rpc.BadRequest field violations)
    ├── Unauthenticated        UNAUTHENTICATED
    ├── PermissionDenied       PERMISSION_DENIED
    ├── NotFound               NOT_FOUND
    ├── AlreadyExists          ALREADY_EXISTS
    ├── FailedPrecondition     FAILED_PRECONDITION
    ├── Aborted                ABORTED (+ google.rpc.RetryInfo)
    ├── ResourceExhausted      RESOURCE_EXHAUSTED
    └── Unavailable            UNAVAILABLE

Each becomes a ``google.rpc.Status`` with exactly one ``ErrorInfo`` (domain ``xporty``) in the trailers, so callers
in any language read the reason with their standard status helpers.

Untrusted input reaches a message only through ``echo`` (a short, escaped prefix); as a last line of defence the
message, every ErrorInfo metadata value and every violation description are cut to a bounded length, so a 1 MB id
never comes back in a status (gRPC clients refuse oversized trailers with RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from .redact import redact

ERROR_DOMAIN = "xporty"
ECHO_CHARS = 32
"""Characters of an untrusted value an error message may repeat."""
MAX_MESSAGE_CHARS = 400
MAX_METADATA_CHARS = 128
MAX_METADATA_ENTRIES = 16


def echo(value: str, limit: int = ECHO_CHARS) -> str:
    """A short, quoted, escaped prefix of an untrusted value for an error message (``'abc…'`` when cut).

    ``repr`` escapes control characters and bidi overrides, so the echo is safe in a terminal too.
    """
    return repr(redact(value[:limit])) + ("…" if len(value) > limit else "")


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request."""

    field: str
    description: str


class XcwlError(Exception):
    """Base of every error that is meant to reach a caller as a gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        message = _bounded(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = {
            _bounded(k, MAX_METADATA_CHARS): _bounded(v, MAX_METADATA_CHARS)
            for k, v in list((metadata or {}).items())[:MAX_METADATA_ENTRIES]
        }

    def extra_details(self) -> list[any_pb2.Any]:
        """Details beyond the ErrorInfo; subclasses add BadRequest, RetryInfo, …"""
        return []

    def to_status(self) -> grpc.Status:
        """The ``grpc.Status`` (code, message, google.rpc.Status trailer) for this error."""
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata)
        packed = any_pb2.Any()
        packed.Pack(info)
        status = status_pb2.Status(
            code=getattr(code_pb2, self.code.name),
            message=redact(self.message),  # the one redaction layer: no PII or secret leaves in a message
            details=[packed, *self.extra_details()],
        )
        return rpc_status.to_status(status)


class InvalidArgument(XcwlError):
    """The request is malformed; ``violations`` names each bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        violations: list[FieldViolation] | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.violations = list(violations or [])
        meta = dict(metadata or {})
        if self.violations and "field" not in meta:
            meta["field"] = self.violations[0].field
        super().__init__(message, reason=reason, metadata=meta)

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        """Shorthand for one bad field."""
        return cls(f"{field}: {description}", violations=[FieldViolation(field, description)])

    def extra_details(self) -> list[any_pb2.Any]:
        if not self.violations:
            return []
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=_bounded(v.field, MAX_METADATA_CHARS), description=_bounded(v.description, MAX_MESSAGE_CHARS)
                )
                for v in self.violations[:MAX_METADATA_ENTRIES]
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        return [packed]


class Unauthenticated(XcwlError):
    """The caller's credentials are missing or invalid."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(XcwlError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class NotFound(XcwlError):
    """The named resource does not exist."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(XcwlError):
    """The resource to create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(XcwlError):
    """The system is not in a state that allows the request."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Aborted(XcwlError):
    """A concurrent request conflicts; retry after ``retry_after_s``."""

    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float = 0.1,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_s = retry_after_s

    def extra_details(self) -> list[any_pb2.Any]:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(self.retry_after_s * 1e9))
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        return [packed]


class ResourceExhausted(XcwlError):
    """A quota or budget is used up."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(XcwlError):
    """A dependency is unreachable; the call may be retried."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


@dataclass(frozen=True)
class RemoteError(Exception):
    """A failed outbound RPC, decoded once from ``grpc.RpcError`` (client side)."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: Mapping[str, str] | None = None

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message} ({self.reason})"


def error_info_of(status: status_pb2.Status) -> error_details_pb2.ErrorInfo | None:
    """The first ErrorInfo in a google.rpc.Status, if any."""
    for detail in status.details:
        # types-protobuf: Message.DESCRIPTOR may be the upb Descriptor, which Any.Is accepts at runtime.
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):  # type: ignore[arg-type]
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def decode_rpc_error(err: grpc.RpcError) -> RemoteError:
    """Turn a ``grpc.RpcError`` (sync or aio) into a ``RemoteError`` with the ErrorInfo reason."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    reason = ""
    metadata: dict[str, str] = {}
    # Runtime trailers are (key, value) pairs (sync tuple or aio Metadata); the stubs' _Metadatum is not iterable.
    trailers = cast(
        "Iterable[tuple[str, str | bytes]] | None",
        err.trailing_metadata() if hasattr(err, "trailing_metadata") else None,
    )
    for key, value in trailers or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            info = error_info_of(status_pb2.Status.FromString(value))
            if info is not None:
                reason = info.reason
                metadata = dict(info.metadata)
    return RemoteError(code=code, message=details or "", reason=reason, metadata=metadata)
