"""Who may call each RPC of the CP: the CP's one authorization table, keyed by full method name.

Default deny: a method not listed is refused (PERMISSION_DENIED ``METHOD_NOT_ALLOWED``), and the CP refuses to
start when it serves a method without a row here (``xwl_runtime.authz.check_complete``). The pipeline enforces
each row before the servicer runs; servicers check only what a method name cannot say — which WL's data a node
may touch (its own policy view, its own signals, its own offers and events).

Callers: ``spiffe://xporty/wl/<id>`` WL nodes; ``spiffe://xporty/ops/<name>`` operators; anonymous callers exist
only on the enrollment listener (server-only TLS), where only rows marked ``anonymous`` pass.
"""

from __future__ import annotations

from xporty.cp.v1 import (
    admin_service_pb2,
    analytics_service_pb2,
    dashboard_service_pb2,
    identity_service_pb2,
    policy_service_pb2,
    rollout_service_pb2,
    signal_service_pb2,
    telemetry_service_pb2,
    webhook_service_pb2,
)
from xwl_runtime.authz import ALL_KINDS, HEALTH_METHODS, REFLECTION_METHODS, Rule, build, methods
from xwl_runtime.identity import Kind

_ADMIN = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"]
ADMIN = _ADMIN.full_name
ANALYTICS = analytics_service_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name
IDENTITY = identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
POLICY = policy_service_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name
DASHBOARD = dashboard_service_pb2.DESCRIPTOR.services_by_name["DashboardService"].full_name
ROLLOUT = rollout_service_pb2.DESCRIPTOR.services_by_name["RolloutService"].full_name
SIGNALS = signal_service_pb2.DESCRIPTOR.services_by_name["SignalService"].full_name
TELEMETRY = telemetry_service_pb2.DESCRIPTOR.services_by_name["TelemetryService"].full_name
WEBHOOKS = webhook_service_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name

NODES = Rule(frozenset({Kind.WL}))
OPERATORS = Rule(frozenset({Kind.OPS}))
NODES_AND_OPERATORS = Rule(frozenset({Kind.WL, Kind.OPS}))
ANYONE_AUTHENTICATED = Rule(ALL_KINDS)

TABLE: dict[str, Rule] = build(
    # AdminService: every method, operators only (the caller's SPIFFE id is the audit actor).
    methods(ADMIN, (m.name for m in _ADMIN.methods), OPERATORS),
    # IdentityService. Enroll has no kinds: a caller with any certificate is refused, so it works only on the
    # enrollment listener (no client certificate) and never on the mTLS listener.
    methods(IDENTITY, ("Enroll",), Rule(frozenset(), anonymous=True)),
    methods(IDENTITY, ("RenewCertificate", "IssueToken", "IssueTokens"), NODES),
    methods(IDENTITY, ("GetJwks",), ANYONE_AUTHENTICATED),
    # PolicyService: a node reads only its own view (checked by the servicer); operators read any.
    methods(POLICY, ("WatchPolicies", "GetPolicies"), NODES_AND_OPERATORS),
    methods(POLICY, ("ReportPolicyStatus",), NODES),
    # TelemetryService: a node reports only its own events, offers and operations (checked by the servicer).
    methods(TELEMETRY, ("PublishEvents", "ReportOffers", "ReportOperations"), NODES),
    # SignalService: a node watches and acknowledges only its own signals (checked by the servicer).
    methods(SIGNALS, ("WatchSignals",), NODES_AND_OPERATORS),
    methods(SIGNALS, ("AckSignal",), NODES),
    methods(SIGNALS, ("SendSignal",), OPERATORS),
    # RolloutService: operators (feature flags and rollout stages, audited).
    methods(ROLLOUT, ("SetFeatureFlag", "ListFeatureFlags", "ListFeatureFlagHistory", "ConfigureRollout",
                      "PromoteRollout", "HoldRollout", "RollbackRollout", "ListRollouts"), OPERATORS),
    # DashboardService: a login link for operators, nodes and apps; the dashboard limits a WL identity to its
    # own pairs (``cp_server/dashboard/access.py``).
    methods(DASHBOARD, ("CreateLoginLink",), Rule(frozenset({Kind.OPS, Kind.WL, Kind.APP}))),
    # AnalyticsService and WebhookService: operators.
    methods(ANALYTICS, ("GetBalances", "ListAlerts", "ListSignals", "ListDiscrepancies", "GetSloReport"), OPERATORS),
    methods(WEBHOOKS, ("AddWebhook", "ListWebhooks", "RemoveWebhook", "TestWebhook"), OPERATORS),
    # Health: also anonymous, so a node about to enroll may probe the enrollment listener (the mTLS listener
    # refuses connections without a client certificate at the handshake). Reflection: authenticated callers.
    [(method, Rule(ALL_KINDS, anonymous=True)) for method in HEALTH_METHODS],
    [(method, ANYONE_AUTHENTICATED) for method in REFLECTION_METHODS],
)
