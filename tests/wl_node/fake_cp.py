"""A scripted PolicyService (test double) served with the production server stack, and views to feed it.

Tests push views and heartbeats, make WatchPolicies refuse (stream down, pull still answered), delay pulls, and
read back what the node sent: watch/pull requests with their versions, reports, and the caller's certificate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import duration_pb2, timestamp_pb2

from xporty.cp.v1 import (
    audit_pb2,
    identity_pb2,
    policy_pb2,
    policy_service_pb2,
    policy_service_pb2_grpc,
    registry_pb2,
)
from xwl_runtime.authz import Rule, service_methods, table
from xwl_runtime.errors import Unavailable
from xwl_runtime.identity import Kind
from xwl_runtime.server import Listener, RunningServer, start_server
from xwl_runtime.tls import ReloadableServerCredentials, TlsMaterial

SERVICE = "xporty.cp.v1.PolicyService"


def _public_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


TOKEN_KEY_PEM = _public_key_pem()


def white_label(wl_id: str) -> registry_pb2.WhiteLabel:
    return registry_pb2.WhiteLabel(
        wl_id=wl_id, name=f"Market {wl_id}", currency=f"XPY-{wl_id[-1].upper()}", currency_decimals=2,
        reference_rate="1.00", trader_endpoint="127.0.0.1:1",
    )


def make_view(
    wl_id: str, version: int, *, peers: tuple[str, ...] = ("wl-b",), fx: str = "2.5"
) -> policy_pb2.PolicyView:
    """A valid view for ``wl_id`` with one ACTIVE pair per peer."""
    view = policy_pb2.PolicyView(wl_id=wl_id, version=version)
    view.generate_time.FromDatetime(dt.datetime.now(dt.UTC))
    view.white_labels.extend([white_label(wl_id), *(white_label(p) for p in peers)])
    for peer in peers:
        a, b = sorted((wl_id, peer))
        view.pairs.append(
            policy_pb2.PairPolicy(
                wl_a=a, wl_b=b, status=policy_pb2.RELATIONSHIP_STATUS_ACTIVE, imbalance_limit="1000",
                fx_rate=fx, fx_version=version, changed_version=version,
                directions=[
                    policy_pb2.DirectionPolicy(exporter_wl=a, importer_wl=b, import_enabled=True,
                                               destination_visible=True,
                                               export_delay=duration_pb2.Duration(seconds=0)),
                    policy_pb2.DirectionPolicy(exporter_wl=b, importer_wl=a, import_enabled=True,
                                               destination_visible=True,
                                               export_delay=duration_pb2.Duration(seconds=0)),
                ],
            )
        )
    view.token_keys.append(identity_pb2.VerificationKey(kid="k1", algorithm="ES256", public_key_pem=TOKEN_KEY_PEM))
    return view


@dataclass
class Seen:
    """What the node sent."""

    watches: list[policy_service_pb2.WatchPoliciesRequest] = field(default_factory=list)
    watch_peers: list[bytes] = field(default_factory=list)
    pulls: list[tuple[float, policy_service_pb2.GetPoliciesRequest]] = field(default_factory=list)
    reports: list[policy_service_pb2.ReportPolicyStatusRequest] = field(default_factory=list)


class ScriptedPolicyService(policy_service_pb2_grpc.PolicyServiceServicer):
    """PolicyService whose behaviour the test drives."""

    def __init__(self, view: policy_pb2.PolicyView | None = None) -> None:
        self.view = view
        self.seen = Seen()
        self.refuse_watch = False
        self.pull_delay_s = 0.0
        self.fail_reports = 0
        self.report_delay_s = 0.0
        self._queues: list[asyncio.Queue[policy_service_pb2.WatchPoliciesResponse]] = []
        self.report_event = asyncio.Event()
        self.watch_event = asyncio.Event()

    # --- driving -------------------------------------------------------------------------------------------
    def push(self, view: policy_pb2.PolicyView) -> None:
        """Make ``view`` current and send it to every open stream (also when its version did not change)."""
        self.view = view
        for q in self._queues:
            q.put_nowait(policy_service_pb2.WatchPoliciesResponse(snapshot=view))

    def heartbeat(
        self, version: int | None = None, *, audit_checkpoint: audit_pb2.AuditCheckpoint | None = None
    ) -> None:
        hb = policy_service_pb2.Heartbeat(version=self.view.version if version is None else version,
                                          audit_checkpoint=audit_checkpoint)
        hb.send_time.FromDatetime(dt.datetime.now(dt.UTC))
        for q in self._queues:
            q.put_nowait(policy_service_pb2.WatchPoliciesResponse(heartbeat=hb))

    @property
    def open_streams(self) -> int:
        return len(self._queues)

    # --- PolicyService -------------------------------------------------------------------------------------
    async def WatchPolicies(self, request, context):  # noqa: N802 - gRPC method name
        self.seen.watches.append(request)
        pems = (context.auth_context() or {}).get("x509_pem_cert") or [b""]
        self.seen.watch_peers.append(pems[0])
        self.watch_event.set()
        if self.refuse_watch:
            raise Unavailable("watch refused by the test", reason="TEST_WATCH_DOWN")
        queue: asyncio.Queue[policy_service_pb2.WatchPoliciesResponse] = asyncio.Queue()
        if self.view is not None:
            queue.put_nowait(policy_service_pb2.WatchPoliciesResponse(snapshot=self.view))
        self._queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)

    async def GetPolicies(self, request, context):  # noqa: N802 - gRPC method name
        self.seen.pulls.append((asyncio.get_running_loop().time(), request))
        if self.pull_delay_s:
            await asyncio.sleep(self.pull_delay_s)
        if self.view is None:
            raise Unavailable("no view yet", reason="TEST_NO_VIEW")
        if request.known_version == self.view.version:
            return policy_service_pb2.GetPoliciesResponse(not_modified=True, version=self.view.version)
        return policy_service_pb2.GetPoliciesResponse(version=self.view.version, view=self.view)

    async def ReportPolicyStatus(self, request, context):  # noqa: N802 - gRPC method name
        if self.fail_reports > 0:
            self.fail_reports -= 1
            raise Unavailable("report refused by the test", reason="TEST_REPORT_DOWN")
        if self.report_delay_s:
            await asyncio.sleep(self.report_delay_s)
        self.seen.reports.append(request)
        self.report_event.set()
        return policy_service_pb2.ReportPolicyStatusResponse(
            current_version=self.view.version if self.view else 0
        )


@dataclass
class FakeCp:
    """A running scripted CP."""

    service: ScriptedPolicyService
    server: RunningServer

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.server.stop(0)


async def start_fake_cp(
    material: TlsMaterial | None, service: ScriptedPolicyService, *, port: int = 0
) -> FakeCp:
    """Serve ``service`` with the production pipeline: mTLS (or plaintext when ``material`` is None)."""
    rule = Rule(frozenset({Kind.WL, Kind.OPS}))
    creds = ReloadableServerCredentials(material).credentials if material is not None else None
    server = await start_server(
        registrations=[lambda s: policy_service_pb2_grpc.add_PolicyServiceServicer_to_server(service, s)],
        service_names=[SERVICE],
        listeners=[Listener(f"127.0.0.1:{port}", creds)],
        authz_table=table(service_methods(SERVICE, ["WatchPolicies", "GetPolicies", "ReportPolicyStatus"], rule)),
        insecure_dev=material is None,
    )
    return FakeCp(service, server)


def ts(when: dt.datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out

