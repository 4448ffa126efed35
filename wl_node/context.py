"""What every WL node component is built from."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from xwl_runtime.clock import Clock
from xwl_runtime.fieldcrypt import KeyMaterial, Keyring
from xwl_runtime.tls import TlsMaterial

from .metrics import NodeMetrics
from .settings import NodeSettings


@dataclass
class NodeContext:
    """Shared, ready dependencies handed to every component factory. ``tls`` is None only in --insecure-dev."""

    settings: NodeSettings
    engine: AsyncEngine
    clock: Clock
    tls: TlsMaterial | None
    keyring: Keyring = field(default_factory=lambda: Keyring(KeyMaterial.generate()))
    """Data keys for personal data at rest; the composition root loads them from the settings (tests and benches
    get a fresh in-memory keyring)."""
    metrics: NodeMetrics = field(default_factory=NodeMetrics)
    """This node's Prometheus registry and metric families (served by ``--metrics-listen``)."""
