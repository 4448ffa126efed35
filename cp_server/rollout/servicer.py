"""``RolloutService``: operators set feature flags and drive direction rollouts (every change audited)."""

from __future__ import annotations

from typing import Any

import grpc

from cp_server.policy.protos import timestamp
from xporty.cp.v1 import rollout_service_pb2 as pb
from xporty.cp.v1 import rollout_service_pb2_grpc
from xwl_runtime.clock import Clock
from xwl_runtime.pipeline import caller

from .flags import FeatureFlags
from .stages import Rollouts


class RolloutServicer(rollout_service_pb2_grpc.RolloutServiceServicer):
    """Proto <-> domain for flags and stages; the caller's SPIFFE id is the audit actor."""

    def __init__(self, flags: FeatureFlags, rollouts: Rollouts, clock: Clock) -> None:
        self._flags = flags
        self._rollouts = rollouts
        self._clock = clock

    async def SetFeatureFlag(  # noqa: N802 - gRPC method name
        self, request: pb.SetFeatureFlagRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.SetFeatureFlagResponse:
        done = await self._flags.set(caller().spiffe_id, request.flag, reason=request.reason, force=request.force,
                                     now=self._clock.now())
        return pb.SetFeatureFlagResponse(flag=done.value.to_proto(), version=done.version)

    async def ListFeatureFlags(  # noqa: N802 - gRPC method name
        self, request: pb.ListFeatureFlagsRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ListFeatureFlagsResponse:
        return pb.ListFeatureFlagsResponse(flags=[f.to_proto() for f in await self._flags.list(request.wl_id)])

    async def ListFeatureFlagHistory(  # noqa: N802 - gRPC method name
        self, request: pb.ListFeatureFlagHistoryRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ListFeatureFlagHistoryResponse:
        rows = await self._flags.history(request.wl_id, request.name)
        return pb.ListFeatureFlagHistoryResponse(changes=[
            pb.FeatureFlagChange(sequence=r["seq"], create_time=timestamp(r["create_time"]), actor=r["actor"],
                                 before_json=r["before_json"], after_json=r["after_json"],
                                 correlation_id=r["correlation_id"])
            for r in rows])

    async def ConfigureRollout(  # noqa: N802 - gRPC method name
        self, request: pb.ConfigureRolloutRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ConfigureRolloutResponse:
        done = await self._rollouts.configure(caller().spiffe_id, request)
        return pb.ConfigureRolloutResponse(rollout=done.value.to_proto(), version=done.version)

    async def PromoteRollout(  # noqa: N802 - gRPC method name
        self, request: pb.PromoteRolloutRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.PromoteRolloutResponse:
        done = await self._rollouts.promote(caller().spiffe_id, request.exporter_wl, request.importer_wl,
                                            request.reason)
        return pb.PromoteRolloutResponse(rollout=done.value.to_proto(), version=done.version)

    async def HoldRollout(  # noqa: N802 - gRPC method name
        self, request: pb.HoldRolloutRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.HoldRolloutResponse:
        done = await self._rollouts.hold(caller().spiffe_id, request.exporter_wl, request.importer_wl,
                                         held=request.held, reason=request.reason)
        return pb.HoldRolloutResponse(rollout=done.value.to_proto(), version=done.version)

    async def RollbackRollout(  # noqa: N802 - gRPC method name
        self, request: pb.RollbackRolloutRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.RollbackRolloutResponse:
        done = await self._rollouts.rollback(caller().spiffe_id, request.exporter_wl, request.importer_wl,
                                             request.reason)
        return pb.RollbackRolloutResponse(rollout=done.value.to_proto(), version=done.version)

    async def ListRollouts(  # noqa: N802 - gRPC method name
        self, request: pb.ListRolloutsRequest, context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ListRolloutsResponse:
        return pb.ListRolloutsResponse(rollouts=[r.to_proto() for r in await self._rollouts.list(request.wl_id)])
