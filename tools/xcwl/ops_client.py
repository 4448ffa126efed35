"""The operator's typed client to the CP (AdminService, PolicyService, AnalyticsService, SignalService, health),
and its command-line flags.

Every call carries an explicit deadline (``--timeout``); a failed call is turned ONCE, here, from
``grpc.RpcError`` into a ``CliError`` whose one-line message names the status code, the server's message and the
ErrorInfo reason (``PERMISSION_DENIED: … (reason OTHER_WL_VIEW)``); ``xcwl`` prints it and exits 2.

Identity: the operator certificate ``ops-<name>.crt``/``.key`` in the PKI directory (``--as NAME``; issue one with
``xcwl pki issue --dir PKI --ops NAME``), or any certificate given with ``--cert``/``--key``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xporty.cp.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    analytics_pb2,
    analytics_service_pb2,
    analytics_service_pb2_grpc,
    audit_pb2,
    dashboard_service_pb2,
    dashboard_service_pb2_grpc,
    policy_pb2,
    policy_service_pb2,
    policy_service_pb2_grpc,
    registry_pb2,
    rollout_service_pb2_grpc,
    signal_pb2,
    signal_service_pb2,
    signal_service_pb2_grpc,
    webhook_pb2,
    webhook_service_pb2,
    webhook_service_pb2_grpc,
)
from xwl_runtime.errors import RemoteError, decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.pipeline import DEV_IDENTITY_METADATA_KEY
from xwl_runtime.pki import PkiDir
from xwl_runtime.tls import KeyPair, TlsMaterial, secure_channel

from .endpoint_probe import wrong_endpoint
from .errors import CliError
from .ops_flags import DEFAULT_TIMEOUT_S, OpsHandler, add_ops_flags, ops_command

__all__ = ["DEFAULT_TIMEOUT_S", "OpsClient", "OpsHandler", "add_ops_flags", "material_from_args", "ops_command"]

R = TypeVar("R", bound=Message)


def material_from_args(args: argparse.Namespace) -> TlsMaterial | None:
    """The TLS material the flags name (None with --insecure-dev); a clear CliError when files are missing."""
    if args.insecure_dev:
        return None
    if not args.pki:
        raise CliError("--pki is required (or set XCWL_PKI): the directory with ca.crt and ops-<name>.crt")
    pki = PkiDir(Path(args.pki))
    if not pki.ca_cert.exists():
        raise CliError(f"no CA certificate at {pki.ca_cert} (--pki)")
    if args.cert or args.key:
        if not (args.cert and args.key):
            raise CliError("--cert and --key go together")
        cert, key = Path(args.cert), Path(args.key)
    else:
        try:
            identity = Identity.ops(args.as_name)
        except ValueError as err:
            raise CliError(f"--as: {err}") from None
        cert, key = pki.cert(identity), pki.key(identity)
    for path in (cert, key):
        if not path.exists():
            raise CliError(f"no such file {path}: issue an operator certificate with "
                           f"'xcwl pki issue --dir {pki.root} --ops {args.as_name}'")
    return TlsMaterial(pki.ca_cert.read_bytes(), KeyPair(cert.read_bytes(), key.read_bytes()))


def describe(remote: RemoteError, target: str) -> str:
    """One line for a failed RPC."""
    if remote.code is grpc.StatusCode.UNAVAILABLE and not remote.reason:
        return (f"UNAVAILABLE: cannot reach {target} ({remote.message}); is it running, and does it trust "
                "this certificate?")
    if remote.code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"DEADLINE_EXCEEDED: {target} did not answer in time"
    line = f"{remote.code.name}: {remote.message}"
    if remote.reason and remote.reason != remote.code.name:
        line += f" (reason {remote.reason})"
    return line


class OpsClient:
    """Typed operator calls; construct with ``OpsClient.connect`` (or around a ready channel in tests)."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        target: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        metadata: tuple[tuple[str, str], ...] = (),
        material: TlsMaterial | None = None,
        expected: Identity | None = None,
    ) -> None:
        self._target = target
        self._timeout = timeout
        self._metadata = metadata
        self._material = material
        self._expected = expected or Identity.cp()
        self._admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        self._policy = policy_service_pb2_grpc.PolicyServiceStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)
        self._analytics = analytics_service_pb2_grpc.AnalyticsServiceStub(channel)
        self._signals = signal_service_pb2_grpc.SignalServiceStub(channel)
        self._webhooks = webhook_service_pb2_grpc.WebhookServiceStub(channel)
        self.rollout = rollout_service_pb2_grpc.RolloutServiceStub(channel)
        """RolloutService (flags and rollout stages), called through ``call``."""
        self._dashboard = dashboard_service_pb2_grpc.DashboardServiceStub(channel)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, target: str, material: TlsMaterial | None, *, timeout: float = DEFAULT_TIMEOUT_S,
        dev_identity: Identity | None = None, expected: Identity | None = None,
    ) -> AsyncIterator[OpsClient]:
        """A client over mTLS to the CP at ``target``, accepting only the CP's identity, or ``expected`` (a WL
        node, for its health); plaintext claiming ``dev_identity`` when ``material`` is None, for servers
        started with ``--insecure-dev``. The channel closes on exit."""
        metadata = ((DEV_IDENTITY_METADATA_KEY, dev_identity.spiffe_id),) if material is None and dev_identity else ()
        async with secure_channel(target, material, expected=expected or Identity.cp()) as channel:
            yield cls(channel, target=target, timeout=timeout, metadata=metadata, material=material,
                      expected=expected)

    @classmethod
    @asynccontextmanager
    async def from_args(cls, args: argparse.Namespace) -> AsyncIterator[OpsClient]:
        material = material_from_args(args)
        try:
            dev_identity = Identity.ops(args.as_name) if material is None else None
        except ValueError as err:
            raise CliError(f"--as: {err}") from None
        async with cls.connect(args.cp, material, timeout=args.timeout, dev_identity=dev_identity) as client:
            yield client

    async def call(self, method: Callable[..., Awaitable[R]], request: Message) -> R:
        """Any RPC of this client's stubs with the deadline, metadata and error translation of every call."""
        return await self._call(method, request)

    async def _call(self, method: Callable[..., Awaitable[R]], request: Message) -> R:
        try:
            return await method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as err:
            raise CliError(await self._explain(decode_rpc_error(err))) from None

    async def _explain(self, remote: RemoteError) -> str:
        """The one-line message; a handshake refused by the wrong server says which server it was."""
        if remote.code is grpc.StatusCode.UNAVAILABLE and not remote.reason and self._material is not None:
            flag = "--cp" if self._expected == Identity.cp() else "endpoint"
            wrong = await wrong_endpoint(self._target, self._material.ca_pem, self._expected, flag)
            if wrong:
                return wrong
        if remote.reason == "NO_IDENTITY" and self._material is not None and self._expected == Identity.cp():
            # We hold a certificate, yet the server saw none: it never asked, so it is the server-TLS listener.
            return (f"--cp {self._target} is the CP's enrollment listener (it does not ask for client certificates), "
                    "not its mTLS listener: give the CP's mTLS listener")
        return describe(remote, self._target)

    # --- registry --------------------------------------------------------------------------------------------
    async def register_wl(self, wl: registry_pb2.WhiteLabel) -> admin_service_pb2.RegisterWlResponse:
        return await self._call(self._admin.RegisterWl, admin_service_pb2.RegisterWlRequest(white_label=wl))

    async def update_wl(self, request: admin_service_pb2.UpdateWlRequest) -> admin_service_pb2.UpdateWlResponse:
        return await self._call(self._admin.UpdateWl, request)

    async def list_wls(self) -> list[registry_pb2.WhiteLabel]:
        resp = await self._call(self._admin.ListWls, admin_service_pb2.ListWlsRequest())
        return list(resp.white_labels)

    async def create_bootstrap_token(
        self, wl_id: str, ttl: dt.timedelta | None = None
    ) -> admin_service_pb2.CreateBootstrapTokenResponse:
        request = admin_service_pb2.CreateBootstrapTokenRequest(wl_id=wl_id)
        if ttl is not None:
            request.ttl.CopyFrom(duration_pb2.Duration(seconds=int(ttl.total_seconds())))
        return await self._call(self._admin.CreateBootstrapToken, request)

    # --- policies --------------------------------------------------------------------------------------------
    async def get_pair(self, wl_a: str, wl_b: str) -> policy_pb2.PairPolicy:
        resp: admin_service_pb2.GetPairPolicyResponse = await self._call(
            self._admin.GetPairPolicy, admin_service_pb2.GetPairPolicyRequest(wl_a=wl_a, wl_b=wl_b)
        )
        return resp.policy

    async def list_pairs(self, wl_id: str = "") -> admin_service_pb2.ListPairPoliciesResponse:
        return await self._call(self._admin.ListPairPolicies, admin_service_pb2.ListPairPoliciesRequest(wl_id=wl_id))

    async def update_pair(
        self, request: admin_service_pb2.UpdatePairPolicyRequest
    ) -> admin_service_pb2.UpdatePairPolicyResponse:
        return await self._call(self._admin.UpdatePairPolicy, request)

    async def update_direction(
        self, request: admin_service_pb2.UpdateDirectionPolicyRequest
    ) -> admin_service_pb2.UpdateDirectionPolicyResponse:
        return await self._call(self._admin.UpdateDirectionPolicy, request)

    async def node_status(self) -> list[admin_service_pb2.NodeStatus]:
        resp = await self._call(self._admin.ListNodeStatus, admin_service_pb2.ListNodeStatusRequest())
        return list(resp.nodes)

    async def get_policies(self, wl_id: str, known_version: int = 0) -> policy_service_pb2.GetPoliciesResponse:
        """A WL's current view as the CP serves it (operators may read any WL's view)."""
        return await self._call(
            self._policy.GetPolicies, policy_service_pb2.GetPoliciesRequest(wl_id=wl_id, known_version=known_version)
        )

    # --- audit -----------------------------------------------------------------------------------------------
    async def list_audit(self, after: int = 0, page_size: int = 100) -> list[admin_service_pb2.AuditRecord]:
        resp = await self._call(
            self._admin.ListAuditRecords,
            admin_service_pb2.ListAuditRecordsRequest(after_sequence=after, page_size=page_size),
        )
        return list(resp.records)

    async def verify_audit(
        self, checkpoints: Sequence[audit_pb2.AuditCheckpoint] = ()
    ) -> admin_service_pb2.VerifyAuditLogResponse:
        """Verify the chain and compare it with ``checkpoints`` kept outside the CP."""
        return await self._call(
            self._admin.VerifyAuditLog, admin_service_pb2.VerifyAuditLogRequest(checkpoints=list(checkpoints))
        )

    async def audit_checkpoint(self) -> audit_pb2.AuditCheckpoint:
        """A checkpoint of the current audit head, signed by the CP."""
        resp: admin_service_pb2.GetAuditCheckpointResponse = await self._call(
            self._admin.GetAuditCheckpoint, admin_service_pb2.GetAuditCheckpointRequest()
        )
        return resp.checkpoint

    # --- risk: analytics and operator signals ------------------------------------------------------------------
    async def balances(self) -> list[analytics_pb2.PairBalance]:
        resp = await self._call(self._analytics.GetBalances, analytics_service_pb2.GetBalancesRequest())
        return list(resp.balances)

    async def alerts(self, open_only: bool = False) -> list[analytics_pb2.Alert]:
        resp = await self._call(self._analytics.ListAlerts,
                                analytics_service_pb2.ListAlertsRequest(open_only=open_only))
        return list(resp.alerts)

    async def signals(self, page_size: int = 100) -> list[signal_pb2.Signal]:
        """Issued signals, newest first."""
        resp = await self._call(self._analytics.ListSignals,
                                analytics_service_pb2.ListSignalsRequest(page_size=page_size))
        return list(resp.signals)

    async def discrepancies(self) -> list[analytics_pb2.Discrepancy]:
        resp = await self._call(self._analytics.ListDiscrepancies, analytics_service_pb2.ListDiscrepanciesRequest())
        return list(resp.discrepancies)

    async def send_signal(self, request: signal_service_pb2.SendSignalRequest) -> signal_pb2.Signal:
        resp: signal_service_pb2.SendSignalResponse = await self._call(self._signals.SendSignal, request)
        return resp.signal

    async def slo_report(self, window_seconds: int) -> analytics_service_pb2.GetSloReportResponse:
        resp: analytics_service_pb2.GetSloReportResponse = await self._call(
            self._analytics.GetSloReport, analytics_service_pb2.GetSloReportRequest(window_seconds=window_seconds))
        return resp

    # --- dashboard -------------------------------------------------------------------------------------------
    async def login_link(self) -> dashboard_service_pb2.CreateLoginLinkResponse:
        resp: dashboard_service_pb2.CreateLoginLinkResponse = await self._call(
            self._dashboard.CreateLoginLink, dashboard_service_pb2.CreateLoginLinkRequest())
        return resp

    # --- webhooks --------------------------------------------------------------------------------------------
    async def add_webhook(self, url: str, event_types: list[str]) -> webhook_service_pb2.AddWebhookResponse:
        resp: webhook_service_pb2.AddWebhookResponse = await self._call(
            self._webhooks.AddWebhook, webhook_service_pb2.AddWebhookRequest(url=url, event_types=event_types))
        return resp

    async def webhooks(self) -> list[webhook_pb2.Webhook]:
        resp = await self._call(self._webhooks.ListWebhooks, webhook_service_pb2.ListWebhooksRequest())
        return list(resp.webhooks)

    async def remove_webhook(self, webhook_id: str) -> None:
        await self._call(self._webhooks.RemoveWebhook, webhook_service_pb2.RemoveWebhookRequest(webhook_id=webhook_id))

    async def test_webhook(self, webhook_id: str) -> str:
        resp = await self._call(self._webhooks.TestWebhook,
                                webhook_service_pb2.TestWebhookRequest(webhook_id=webhook_id))
        return str(resp.delivery_id)

    # --- health ----------------------------------------------------------------------------------------------
    async def revoke_certificate(
        self, request: admin_service_pb2.RevokeCertificateRequest
    ) -> admin_service_pb2.RevokeCertificateResponse:
        return await self._call(self._admin.RevokeCertificate, request)

    async def list_revoked(self, wl_id: str = "") -> list[policy_pb2.RevokedCertificate]:
        resp = await self._call(self._admin.ListRevokedCertificates,
                                admin_service_pb2.ListRevokedCertificatesRequest(wl_id=wl_id))
        return list(resp.revoked)

    async def import_certificate(self, pem: str) -> admin_service_pb2.ImportCertificateResponse:
        return await self._call(self._admin.ImportCertificate,
                                admin_service_pb2.ImportCertificateRequest(certificate_pem=pem))

    async def rotate_token_key(self) -> admin_service_pb2.RotateTokenKeyResponse:
        return await self._call(self._admin.RotateTokenKey, admin_service_pb2.RotateTokenKeyRequest())

    async def health(self, service: str = "") -> str:
        """The server's health status name, e.g. ``SERVING``."""
        # types-grpcio-health-checking's HealthStub omits the per-method callables __init__ sets.
        check = self._health.Check  # type: ignore[attr-defined]
        resp = await self._call(check, health_pb2.HealthCheckRequest(service=service))
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))
