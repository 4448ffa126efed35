"""What every CP component is built from: settings, the store engine, the CA, the clock, the change hub."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from xwl_runtime.clock import Clock
from xwl_runtime.pki import CertificateAuthority
from xwl_runtime.tls import TlsMaterial

from .settings import CpSettings


@dataclass
class CpContext:
    """Shared, ready dependencies handed to every component factory."""

    settings: CpSettings
    engine: AsyncEngine
    clock: Clock
    ca: CertificateAuthority
    tls: TlsMaterial
