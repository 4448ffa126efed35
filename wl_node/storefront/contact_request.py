"""The importer side of a contact request: ask the exporter that owns a contact, over mTLS, with a deadline.

The clear contact is returned to the calling app and never stored on this node. The exporter decides (its grant)
and logs the disclosure; its refusal reaches the app as the same status and reason.
"""

from __future__ import annotations

import grpc

from wl_node.catalog.sync import ChannelFactory
from wl_node.catalog.visibility import import_terms
from wl_node.policy.state import PolicyState
from xporty.trader.v1 import offer_pb2
from xporty.trader.v1 import trader_service_pb2 as pb
from xporty.trader.v1 import trader_service_pb2_grpc as pb_grpc
from xwl_runtime import correlation
from xwl_runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
    XcwlError,
    decode_rpc_error,
)
from xwl_runtime.identity import Identity
from xwl_runtime.tls import TlsMaterial

CONTACT_TIMEOUT_S = 2.0
_PASSED_ON: dict[grpc.StatusCode, type[XcwlError]] = {
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied, grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument, grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}


class ContactRequester:
    """Calls ``TraderService/GetTraderContact`` at the exporter named by the policy view."""

    def __init__(self, state: PolicyState, tls: TlsMaterial | None, channel_factory: ChannelFactory) -> None:
        self._state = state
        self._tls = tls
        self._channels = channel_factory

    async def request(self, exporter: str, handle: str, purpose: str) -> offer_pb2.TraderContact:
        """The clear contact behind ``handle`` at ``exporter``, or the exporter's refusal."""
        terms = import_terms(self._state, exporter)
        if terms is None or not handle:
            raise NotFound("no contact to ask for", reason="CONTACT_NOT_FOUND")
        channel = self._channels(terms.endpoint, self._tls, Identity.wl(exporter))
        try:
            stub = pb_grpc.TraderServiceStub(channel)
            resp = await stub.GetTraderContact(pb.GetTraderContactRequest(handle=handle, purpose=purpose),
                                               timeout=CONTACT_TIMEOUT_S, metadata=correlation.outbound_metadata())
        except grpc.aio.AioRpcError as err:
            remote = decode_rpc_error(err)
            cls = _PASSED_ON.get(remote.code, Unavailable)
            raise cls(f"the exporter refused: {remote.message}", reason=remote.reason or None) from err
        finally:
            await channel.close()
        contact: offer_pb2.TraderContact = resp.contact
        return contact
