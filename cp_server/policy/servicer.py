"""PolicyService: WatchPolicies (push), GetPolicies (pull) and ReportPolicyStatus, served from the hub.

Stream contract (``docs/cp.md``): the first message is always the full current view; after that a new snapshot
is sent for every new policy version (a view's version is the CP-wide version, so every change reaches every
stream, and a node's applied version compares directly with the CP's); a heartbeat carrying the current version
and the CP's latest signed audit head is sent when nothing else was sent for ``heartbeat_interval``. A WL may read
only its own view; an operator must name the WL. Nothing is served before the hub's first full load (UNAVAILABLE,
reason CP_NOT_READY).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from cp_server.store import validation
from cp_server.store.node_status import NodeReport, NodeStatusStore
from xporty.cp.v1 import policy_pb2, policy_service_pb2, policy_service_pb2_grpc
from xwl_runtime.clock import Clock
from xwl_runtime.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable, echo
from xwl_runtime.identity import Kind
from xwl_runtime.pipeline import caller
from xwl_runtime.text import human_text

from . import protos
from .hub import PolicyHub

MAX_ERROR_CHARS = 4096
MAX_VERSION = 2**63 - 1

VersionRecorder = Callable[[str, str, str, list[str], dt.datetime], Awaitable[None]]
"""``record(wl_id, software_version, contract_version, features, now)``: a node's reported versions and
capabilities (``cp_server.rollout.capabilities.NodeVersions.record``)."""


class PolicyServicer(policy_service_pb2_grpc.PolicyServiceServicer):
    """Serves policy views from the hub's in-memory snapshot."""

    def __init__(
        self, hub: PolicyHub, node_status: NodeStatusStore, clock: Clock, heartbeat_interval: dt.timedelta,
        versions: VersionRecorder | None = None,
    ) -> None:
        self._versions = versions
        self._hub = hub
        self._node_status = node_status
        self._clock = clock
        self._heartbeat_s = heartbeat_interval.total_seconds()
        self.open_streams = 0
        """WatchPolicies streams open in this process (``xcwl_stream_subscribers{stream="policies"}``)."""

    def _target(self, requested: str) -> str:
        """Whose view the caller may read: its own (WL), or the one it names (operator)."""
        ident = caller()
        if ident.kind is Kind.WL:
            if requested and requested != ident.wl_id:
                raise PermissionDenied(
                    f"{ident.spiffe_id} may read only its own policy view",
                    reason="OTHER_WL_VIEW", metadata={"caller": ident.spiffe_id, "wl_id": requested},
                )
            return ident.wl_id
        if not requested:
            raise InvalidArgument.field("wl_id", "required for operators")
        return validation.wl_id("wl_id", requested)

    def _view(self, wl_id: str) -> policy_pb2.PolicyView:
        view = self._hub.view(wl_id)
        if view is None:
            raise NotFound(f"WL {echo(wl_id)} is not registered", reason="UNKNOWN_WL", metadata={"wl_id": wl_id})
        return view

    async def WatchPolicies(  # noqa: N802 - gRPC method name
        self,
        request: policy_service_pb2.WatchPoliciesRequest,
        context: grpc.aio.ServicerContext[
            policy_service_pb2.WatchPoliciesRequest, policy_service_pb2.WatchPoliciesResponse
        ],
    ) -> AsyncIterator[policy_service_pb2.WatchPoliciesResponse]:
        wl_id = self._target(request.wl_id)
        if self._hub.closed:
            raise Unavailable("the control plane is shutting down; reconnect", reason="CP_SHUTTING_DOWN")
        view = self._view(wl_id)
        self.open_streams += 1
        try:
            yield policy_service_pb2.WatchPoliciesResponse(snapshot=view)
            sent_version, last_sent = view.version, self._clock.monotonic()
            while True:
                idle = self._clock.monotonic() - last_sent
                await self._hub.wait_for_change(sent_version, timeout=self._heartbeat_s - idle)
                if self._hub.closed:
                    return
                if self._hub.version > sent_version:
                    view = self._view(wl_id)
                    yield policy_service_pb2.WatchPoliciesResponse(snapshot=view)
                    sent_version, last_sent = view.version, self._clock.monotonic()
                elif self._clock.monotonic() - last_sent >= self._heartbeat_s:
                    yield policy_service_pb2.WatchPoliciesResponse(
                        heartbeat=policy_service_pb2.Heartbeat(
                            version=sent_version, send_time=protos.timestamp(self._clock.now()),
                            audit_checkpoint=self._hub.checkpoint,
                        )
                    )
                    last_sent = self._clock.monotonic()
        finally:
            self.open_streams -= 1

    async def GetPolicies(  # noqa: N802
        self,
        request: policy_service_pb2.GetPoliciesRequest,
        context: grpc.aio.ServicerContext[
            policy_service_pb2.GetPoliciesRequest, policy_service_pb2.GetPoliciesResponse
        ],
    ) -> policy_service_pb2.GetPoliciesResponse:
        wl_id = self._target(request.wl_id)
        world = self._hub.world()  # no database access: the hub knows the version
        if wl_id not in world.white_labels:
            raise NotFound(f"WL {wl_id!r} is not registered", reason="UNKNOWN_WL", metadata={"wl_id": wl_id})
        if request.known_version == world.version:
            return policy_service_pb2.GetPoliciesResponse(not_modified=True, version=world.version)
        view = self._view(wl_id)
        return policy_service_pb2.GetPoliciesResponse(version=view.version, view=view)

    async def ReportPolicyStatus(  # noqa: N802
        self,
        request: policy_service_pb2.ReportPolicyStatusRequest,
        context: grpc.aio.ServicerContext[
            policy_service_pb2.ReportPolicyStatusRequest, policy_service_pb2.ReportPolicyStatusResponse
        ],
    ) -> policy_service_pb2.ReportPolicyStatusResponse:
        ident = caller()
        # A node's error note is shown to operators by ``xcwl policy status``: human text rules apply.
        human_text("error", request.error, max_chars=MAX_ERROR_CHARS, required=False)
        for name in ("applied_version", "rejected_version"):
            if getattr(request, name) > MAX_VERSION:
                raise InvalidArgument.field(name, f"at most {MAX_VERSION}")
        if request.error and not request.rejected_version:
            raise InvalidArgument.field("rejected_version", "required when error is set")
        apply_time = (
            request.apply_time.ToDatetime(tzinfo=dt.UTC) if request.HasField("apply_time") else None
        )
        current = self._hub.world().version
        if self._versions is not None and (request.software_version or request.contract_version or request.features):
            await self._versions(ident.wl_id, request.software_version, request.contract_version,
                                 list(request.features), self._clock.now())
        await self._node_status.report(
            NodeReport(
                wl_id=ident.wl_id, applied_version=request.applied_version,
                rejected_version=request.rejected_version, last_error=request.error, apply_time=apply_time,
                report_time=self._clock.now(),
            )
        )
        return policy_service_pb2.ReportPolicyStatusResponse(current_version=current)
