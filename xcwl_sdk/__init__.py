"""The Python SDK for a WL's own services: a typed async client of the WL node's local API.

Quick start (an app certificate ``spiffe://xporty/wl/wl-a/app/shop`` issued by the operator)::

    from xcwl_sdk import StorefrontClient, app_credentials

    async with StorefrontClient.connect("node-a:7500", app_credentials(pki, "wl-a", "shop")) as node:
        offers = await node.list_imported_offers()
        checkout = await node.checkout(offers[0].imported_offer_id, 1, buyer_reference="member-42")

See docs/sdk.md for every call, the error model and the retry rules.
"""

from .client import StorefrontClient, app_credentials, credentials_from_files, new_idempotency_key
from .config import ClientConfig, RetryConfig
from .errors import (
    AbortedError,
    AlreadyExistsError,
    ApiError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    SdkError,
    UnauthenticatedError,
    UnavailableError,
    from_rpc_error,
)

__all__ = [
    "AbortedError", "AlreadyExistsError", "ApiError", "ClientConfig", "DeadlineExceededError",
    "FailedPreconditionError", "FieldViolation", "InternalError", "InvalidArgumentError", "NotFoundError",
    "PermissionDeniedError", "ResourceExhaustedError", "RetryConfig", "SdkError",
    "StorefrontClient", "UnauthenticatedError", "UnavailableError", "app_credentials", "credentials_from_files",
    "from_rpc_error", "new_idempotency_key",
]
