"""What every CP component is built from: settings, the store engine, the CA, keys, audit log and clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncEngine

from xwl_runtime.clock import Clock
from xwl_runtime.pki import CertificateAuthority
from xwl_runtime.tls import TlsMaterial

from .metrics import CpMetrics
from .settings import CpSettings

if TYPE_CHECKING:
    from .audit.log import AuditLog


@dataclass
class CpContext:
    """Shared, ready dependencies handed to every component factory (built once in ``app.py``)."""

    settings: CpSettings
    engine: AsyncEngine
    clock: Clock
    ca: CertificateAuthority
    tls: TlsMaterial
    jwt_key: ec.EllipticCurvePrivateKey
    audit: AuditLog
    metrics: CpMetrics = field(default_factory=CpMetrics)
    """The CP's Prometheus registry and metric families (served by ``--metrics-listen``)."""
