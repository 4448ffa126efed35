"""AdminService: the operators' API to the registry, pair policies, node status, enrollment tokens and audit.

Thin: every rule lives in the store (``WlRegistry``, ``PairPolicies``) and the audit log; this module maps
proto <-> domain and names the caller (its SPIFFE id is the audit actor). Operators only (authz table).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.audit import checkpoint as audit_checkpoints
from cp_server.audit.log import AuditEntry, AuditLog
from cp_server.policy import protos
from cp_server.policy.hub import PolicyHub
from cp_server.rollout.capabilities import NodeVersions, used_features
from cp_server.store import validation
from cp_server.store.node_status import NodeStatusStore
from cp_server.store.pairs import PairPolicies
from cp_server.store.registry import UNKNOWN_WL_REASON, WlRegistry
from cp_server.store.versions import first_commit_after
from xporty.cp.v1 import admin_service_pb2 as pb
from xporty.cp.v1 import admin_service_pb2_grpc
from xwl_runtime.audit_checkpoint import CheckpointInvalid, verify_checkpoint
from xwl_runtime.clock import Clock
from xwl_runtime.errors import FieldViolation, InvalidArgument, echo
from xwl_runtime.pipeline import caller

if TYPE_CHECKING:
    from cp_server.trust.admin import TrustAdmin

DEFAULT_TOKEN_TTL = dt.timedelta(hours=1)
MAX_TOKEN_TTL = dt.timedelta(days=7)
DEFAULT_AUDIT_PAGE = 100
MAX_AUDIT_PAGE = 1000
MAX_SEQUENCE = 2**63 - 1
MAX_VERIFY_CHECKPOINTS = 64


class TokenIssuer(Protocol):
    """What CreateBootstrapToken needs (``cp_server.identity.bootstrap.BootstrapTokens``)."""

    async def create(self, wl_id: str, ttl: dt.timedelta) -> tuple[str, dt.datetime]: ...


def _audit_record(entry: AuditEntry) -> pb.AuditRecord:
    return pb.AuditRecord(
        sequence=entry.seq, create_time=protos.timestamp(entry.create_time), actor=entry.actor,
        correlation_id=entry.correlation_id, action=entry.action, subject=entry.subject,
        before_json=entry.before_json, after_json=entry.after_json, hash=entry.hash, signature=entry.signature,
    )


class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    """Operator RPCs."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        registry: WlRegistry,
        pairs: PairPolicies,
        hub: PolicyHub,
        node_status: NodeStatusStore,
        audit: AuditLog,
        tokens: TokenIssuer,
        clock: Clock,
        trust: TrustAdmin,
        versions: NodeVersions | None = None,
    ) -> None:
        self._versions = versions
        self._engine = engine
        self._trust = trust
        self._registry = registry
        self._pairs = pairs
        self._hub = hub
        self._node_status = node_status
        self._audit = audit
        self._tokens = tokens
        self._clock = clock

    # --- registry --------------------------------------------------------------------------------------------
    async def RegisterWl(  # noqa: N802
        self,
        request: pb.RegisterWlRequest,
        context: grpc.aio.ServicerContext[pb.RegisterWlRequest, pb.RegisterWlResponse],
    ) -> pb.RegisterWlResponse:
        wl = request.white_label
        done = await self._registry.register(
            caller().spiffe_id, wl_id=wl.wl_id, name=wl.name, currency=wl.currency,
            currency_decimals=wl.currency_decimals, reference_rate=wl.reference_rate,
            trader_endpoint=wl.trader_endpoint, dns_names=tuple(wl.dns_names),
        )
        return pb.RegisterWlResponse(white_label=protos.white_label(done.value), version=done.version)

    async def UpdateWl(  # noqa: N802
        self, request: pb.UpdateWlRequest, context: grpc.aio.ServicerContext[pb.UpdateWlRequest, pb.UpdateWlResponse]
    ) -> pb.UpdateWlResponse:
        done = await self._registry.update(
            caller().spiffe_id, wl_id=request.wl_id,
            name=request.name if request.HasField("name") else None,
            reference_rate=request.reference_rate if request.HasField("reference_rate") else None,
            trader_endpoint=request.trader_endpoint if request.HasField("trader_endpoint") else None,
            dns_names=tuple(request.dns_names.names) if request.HasField("dns_names") else None,
        )
        return pb.UpdateWlResponse(white_label=protos.white_label(done.value), version=done.version)

    async def ListWls(  # noqa: N802
        self, request: pb.ListWlsRequest, context: grpc.aio.ServicerContext[pb.ListWlsRequest, pb.ListWlsResponse]
    ) -> pb.ListWlsResponse:
        return pb.ListWlsResponse(white_labels=[protos.white_label(w) for w in await self._registry.list()])

    # --- pairs -----------------------------------------------------------------------------------------------
    async def UpdatePairPolicy(  # noqa: N802
        self,
        request: pb.UpdatePairPolicyRequest,
        context: grpc.aio.ServicerContext[pb.UpdatePairPolicyRequest, pb.UpdatePairPolicyResponse],
    ) -> pb.UpdatePairPolicyResponse:
        done = await self._pairs.update_pair(
            caller().spiffe_id, wl_x=request.wl_a, wl_y=request.wl_b,
            status=protos.status_from_proto("status", request.status) if request.HasField("status") else None,
            imbalance_limit=request.imbalance_limit if request.HasField("imbalance_limit") else None,
            fx_rate=request.fx_rate if request.HasField("fx_rate") else None,
            force_fx=request.force_fx,
            imports_frozen=request.imports_frozen if request.HasField("imports_frozen") else None,
            reason=request.reason,
        )
        return pb.UpdatePairPolicyResponse(policy=protos.pair_policy(done.value), version=done.version)

    async def UpdateDirectionPolicy(  # noqa: N802
        self,
        request: pb.UpdateDirectionPolicyRequest,
        context: grpc.aio.ServicerContext[pb.UpdateDirectionPolicyRequest, pb.UpdateDirectionPolicyResponse],
    ) -> pb.UpdateDirectionPolicyResponse:
        delay = request.export_delay if request.HasField("export_delay") else None
        done = await self._pairs.update_direction(
            caller().spiffe_id, exporter=request.exporter_wl, importer=request.importer_wl,
            import_enabled=request.import_enabled if request.HasField("import_enabled") else None,
            destination_visible=request.destination_visible if request.HasField("destination_visible") else None,
            export_delay=(delay.seconds, delay.nanos) if delay is not None else None,
            reason=request.reason,
        )
        return pb.UpdateDirectionPolicyResponse(policy=protos.pair_policy(done.value), version=done.version)

    async def GetPairPolicy(  # noqa: N802
        self,
        request: pb.GetPairPolicyRequest,
        context: grpc.aio.ServicerContext[pb.GetPairPolicyRequest, pb.GetPairPolicyResponse],
    ) -> pb.GetPairPolicyResponse:
        return pb.GetPairPolicyResponse(policy=protos.pair_policy(await self._pairs.get(request.wl_a, request.wl_b)))

    async def ListPairPolicies(  # noqa: N802
        self,
        request: pb.ListPairPoliciesRequest,
        context: grpc.aio.ServicerContext[pb.ListPairPoliciesRequest, pb.ListPairPoliciesResponse],
    ) -> pb.ListPairPoliciesResponse:
        found = await self._pairs.list(request.wl_id)
        return pb.ListPairPoliciesResponse(policies=[protos.pair_policy(p) for p in found],
                                           version=self._hub.world().version)

    # --- nodes -----------------------------------------------------------------------------------------------
    async def ListNodeStatus(  # noqa: N802
        self,
        request: pb.ListNodeStatusRequest,
        context: grpc.aio.ServicerContext[pb.ListNodeStatusRequest, pb.ListNodeStatusResponse],
    ) -> pb.ListNodeStatusResponse:
        world = self._hub.world()
        current = world.version
        versions = await self._versions.all() if self._versions is not None else {}
        wls = await self._registry.list()
        reports = await self._node_status.all()
        now = self._clock.now()
        since: dict[int, dt.datetime | None] = {}
        nodes = []
        async with self._engine.connect() as conn:
            for wl in wls:
                report = reports.get(wl.wl_id)
                applied = report.applied_version if report else 0
                status = pb.NodeStatus(
                    wl_id=wl.wl_id, applied_version=applied, current_version=current, drifted=applied < current,
                    rejected_version=report.rejected_version if report else 0,
                    last_error=report.last_error if report else "",
                )
                reported = versions.get(wl.wl_id)
                if reported is not None:
                    status.software_version = reported.software_version
                    status.contract_version = reported.contract_version
                    status.features.extend(reported.features)
                status.unsupported.extend(sorted(used_features(world, wl.wl_id) - set(status.features)))
                if report is not None:
                    status.report_time.CopyFrom(protos.timestamp(report.report_time))
                if applied < current:
                    if applied not in since:
                        since[applied] = await first_commit_after(conn, applied)
                    started = since[applied]
                    if started is not None:
                        status.drift.CopyFrom(protos.duration(max(0.0, (now - started).total_seconds())))
                nodes.append(status)
        return pb.ListNodeStatusResponse(nodes=nodes)

    async def CreateBootstrapToken(  # noqa: N802
        self,
        request: pb.CreateBootstrapTokenRequest,
        context: grpc.aio.ServicerContext[pb.CreateBootstrapTokenRequest, pb.CreateBootstrapTokenResponse],
    ) -> pb.CreateBootstrapTokenResponse:
        wl_id = validation.wl_id("wl_id", request.wl_id)
        ttl = request.ttl.ToTimedelta() if request.HasField("ttl") else DEFAULT_TOKEN_TTL
        if ttl <= dt.timedelta(0) or ttl > MAX_TOKEN_TTL:
            raise InvalidArgument.field("ttl", f"must be positive and at most {MAX_TOKEN_TTL}")
        if await self._registry.get(wl_id) is None:
            raise InvalidArgument(f"wl_id: unknown WL {echo(wl_id)}", reason=UNKNOWN_WL_REASON,
                                  violations=[FieldViolation("wl_id", f"unknown WL {echo(wl_id)}")])
        token, expires = await self._tokens.create(wl_id, ttl)
        async with self._engine.begin() as conn:  # the token itself is never audited
            await self._audit.append(
                conn, actor=caller().spiffe_id, action="bootstrap_token.create", subject=f"wl/{wl_id}",
                before=None, after={"wl_id": wl_id, "expire_time": expires},
            )
        return pb.CreateBootstrapTokenResponse(token=token, expire_time=protos.timestamp(expires))

    # --- audit -----------------------------------------------------------------------------------------------
    async def ListAuditRecords(  # noqa: N802
        self,
        request: pb.ListAuditRecordsRequest,
        context: grpc.aio.ServicerContext[pb.ListAuditRecordsRequest, pb.ListAuditRecordsResponse],
    ) -> pb.ListAuditRecordsResponse:
        size = request.page_size or DEFAULT_AUDIT_PAGE
        if size > MAX_AUDIT_PAGE:
            raise InvalidArgument.field("page_size", f"at most {MAX_AUDIT_PAGE}")
        after = min(request.after_sequence, MAX_SEQUENCE)  # uint64 on the wire, BIGINT in the store
        entries = await self._audit.list(self._engine, after_seq=after, limit=size)
        return pb.ListAuditRecordsResponse(records=[_audit_record(e) for e in entries])

    async def VerifyAuditLog(  # noqa: N802
        self,
        request: pb.VerifyAuditLogRequest,
        context: grpc.aio.ServicerContext[pb.VerifyAuditLogRequest, pb.VerifyAuditLogResponse],
    ) -> pb.VerifyAuditLogResponse:
        if len(request.checkpoints) > MAX_VERIFY_CHECKPOINTS:
            raise InvalidArgument.field("checkpoints", f"at most {MAX_VERIFY_CHECKPOINTS}")
        for index, checkpoint in enumerate(request.checkpoints):  # only the CA's own statements count
            try:
                verify_checkpoint(checkpoint, self._audit.public_key)
            except CheckpointInvalid as err:
                raise InvalidArgument(
                    f"checkpoints[{index}]: {err}", reason="AUDIT_CHECKPOINT_INVALID",
                    violations=[FieldViolation(f"checkpoints[{index}]", str(err))],
                ) from None
        ok, count, first_bad = await self._audit.verify(self._engine)
        checks = await audit_checkpoints.compare(self._engine, request.checkpoints)
        checkpoint_bad = audit_checkpoints.first_failure(checks)
        if checkpoint_bad:
            ok, first_bad = False, min(first_bad or checkpoint_bad, checkpoint_bad)
        return pb.VerifyAuditLogResponse(
            ok=ok, records=count, first_bad_sequence=first_bad, checkpoint_checks=checks
        )

    # --- certificates and token keys (cp_server.trust) -----------------------------------------------------
    async def RevokeCertificate(  # noqa: N802
        self,
        request: pb.RevokeCertificateRequest,
        context: grpc.aio.ServicerContext[pb.RevokeCertificateRequest, pb.RevokeCertificateResponse],
    ) -> pb.RevokeCertificateResponse:
        return await self._trust.revoke(caller().spiffe_id, request)

    async def ListRevokedCertificates(  # noqa: N802
        self,
        request: pb.ListRevokedCertificatesRequest,
        context: grpc.aio.ServicerContext[pb.ListRevokedCertificatesRequest, pb.ListRevokedCertificatesResponse],
    ) -> pb.ListRevokedCertificatesResponse:
        return await self._trust.list_revoked(request)

    async def ImportCertificate(  # noqa: N802
        self,
        request: pb.ImportCertificateRequest,
        context: grpc.aio.ServicerContext[pb.ImportCertificateRequest, pb.ImportCertificateResponse],
    ) -> pb.ImportCertificateResponse:
        return await self._trust.import_certificate(caller().spiffe_id, request)

    async def RotateTokenKey(  # noqa: N802
        self,
        request: pb.RotateTokenKeyRequest,
        context: grpc.aio.ServicerContext[pb.RotateTokenKeyRequest, pb.RotateTokenKeyResponse],
    ) -> pb.RotateTokenKeyResponse:
        return await self._trust.rotate_token_key(caller().spiffe_id)

    async def GetAuditCheckpoint(  # noqa: N802
        self,
        request: pb.GetAuditCheckpointRequest,
        context: grpc.aio.ServicerContext[pb.GetAuditCheckpointRequest, pb.GetAuditCheckpointResponse],
    ) -> pb.GetAuditCheckpointResponse:
        return pb.GetAuditCheckpointResponse(checkpoint=await self._audit.checkpoints.current(self._engine))
