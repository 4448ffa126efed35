"""Typed, immutable settings of a CP process, validated once at the edge (the CLI)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from xwl_runtime.ratelimit import RateLimits

from .dashboard import DashboardSettings
from .risk import RiskSettings
from .rollout import RolloutConfig
from .webhooks import WebhookConfig

ENROLL_MAX_RECEIVE_BYTES = 8 * 1024
"""An Enroll request is a bootstrap token (47 characters) and a CSR for one P-256 key (under 1 KiB)."""
MAX_RECEIVE_BYTES = 16 * 1024 * 1024
"""Largest request on the mTLS listener: a PublishEvents batch of 5,000 events (~5 MB) or a ReportOffers digest
set (~83 KB per destination of 200 offers), see docs/operations.md."""


@dataclass(frozen=True)
class CpSettings:
    """Every knob of the CP, with its default."""

    db_url: str
    """SQLAlchemy URL: ``sqlite:///cp.db`` (default) or ``postgresql://user@host/db``."""
    pki_dir: Path
    """PKI directory holding ca.crt/ca.key and cp.crt/cp.key."""
    listen: str = "127.0.0.1:7400"
    """mTLS listener (every RPC but Enroll)."""
    enroll_listen: str = "127.0.0.1:7401"
    """Server-authenticated TLS listener for IdentityService.Enroll (nodes have no certificate yet)."""
    max_receive_bytes: int = MAX_RECEIVE_BYTES
    """Largest request message on the mTLS listener (refused by gRPC core, unread, above it)."""
    enroll_max_receive_bytes: int = ENROLL_MAX_RECEIVE_BYTES
    """Largest request message on the anonymous enrollment listener."""
    rate_limits: RateLimits = field(default_factory=RateLimits)
    """Per-caller token buckets and stream caps, applied before any servicer runs."""
    insecure_dev: bool = False
    """Plaintext listeners; identity from the x-xcwl-dev-identity header. Development only."""
    heartbeat_interval: dt.timedelta = dt.timedelta(seconds=10)
    """Heartbeat period on idle WatchPolicies / WatchSignals streams."""
    max_fx_step: Decimal = Decimal("0.10")
    """Largest relative FX change accepted without ``force_fx`` (0.10 = 10%)."""
    max_fx_rate: Decimal = Decimal("1000000")
    """Upper bound of any FX rate (and lower bound 1/max_fx_rate)."""
    node_cert_lifetime: dt.timedelta = dt.timedelta(hours=24)
    """Lifetime of certificates issued at enrollment and renewal."""
    token_lifetime: dt.timedelta = dt.timedelta(minutes=5)
    """Lifetime of JWTs issued to WL nodes (at most 5 minutes)."""
    max_identity_age: dt.timedelta = dt.timedelta(days=30)
    """How long a node identity lives from its enrollment: renewals never extend past it (then: a new token)."""
    notify_channel: str = "xcwl_changes"
    """PostgreSQL LISTEN/NOTIFY channel for change fan-out between CP replicas."""
    risk: RiskSettings = field(default_factory=RiskSettings)
    """Imbalance thresholds (80% alert, >100% disable, 60% re-enable), trend window, reconciliation grace."""
    metrics_listen: str = ""
    """``HOST:PORT`` of the Prometheus scrape endpoint (plain HTTP ``/metrics``); empty = no endpoint."""
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    """Operator webhook delivery: attempts before the dead letter, backoff, HTTP deadline."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """Automatic hold of rollout stages: SLO window, check period, minimum samples, targets."""
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    """The web dashboard (``http_listen``, link and session lifetimes) and the retention of its rollups."""
