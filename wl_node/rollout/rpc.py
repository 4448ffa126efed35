"""``FeatureFlagService``: this WL's feature flags for its own apps (and operators), from the node's view."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from xporty.node.v1 import feature_flag_service_pb2 as pb
from xporty.node.v1 import feature_flag_service_pb2_grpc
from xwl_runtime.errors import InvalidArgument
from xwl_runtime.text import bounded

from .flags import FlagBoard

SERVICE = pb.DESCRIPTOR.services_by_name["FeatureFlagService"].full_name
MAX_NAMES = 100
MAX_NAME_CHARS = 63
MAX_SUBJECT_CHARS = 128


def _validate(names: Sequence[str], subject: str) -> None:
    if len(names) > MAX_NAMES:
        raise InvalidArgument.field("names", f"at most {MAX_NAMES}")
    for i, name in enumerate(names):
        bounded(f"names[{i}]", name, max_chars=MAX_NAME_CHARS)
        if not name:
            raise InvalidArgument.field(f"names[{i}]", "required")
    bounded("subject", subject, max_chars=MAX_SUBJECT_CHARS)


class FeatureFlagServicer(feature_flag_service_pb2_grpc.FeatureFlagServiceServicer):
    def __init__(self, board: FlagBoard, wl_id: str) -> None:
        self._board = board
        self._wl_id = wl_id

    async def GetFeatureFlags(  # noqa: N802 - gRPC method name
        self, request: pb.GetFeatureFlagsRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.GetFeatureFlagsResponse:
        _validate(request.names, request.subject)
        flags, version = self._board.read(request.names, request.subject)
        return pb.GetFeatureFlagsResponse(flags=flags, policy_version=version)

    async def WatchFeatureFlags(  # noqa: N802 - gRPC method name
        self, request: pb.WatchFeatureFlagsRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.WatchFeatureFlagsResponse]:
        _validate(request.names, request.subject)
        sent: list[Any] | None = None
        while True:
            changed = self._board.next_change()
            flags, version = self._board.read(request.names, request.subject)
            if flags != sent:  # a new view that leaves these flags as they were sends nothing
                yield pb.WatchFeatureFlagsResponse(flags=flags, policy_version=version)
                sent = flags
            await changed.wait()
