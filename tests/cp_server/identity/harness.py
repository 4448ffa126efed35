"""A real CP serving IdentityService for the identity tests: production pipeline, two listeners, real store.

The server is assembled here from the identity component and a minimal ``CpContext`` (real store with every
migration branch, real audit log), so these tests do not depend on the rest of the CP's composition root.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from cp_server.audit.log import AuditEntry, AuditLog
from cp_server.authz import TABLE as CP_AUTHZ
from cp_server.context import CpContext
from cp_server.identity.bootstrap import BootstrapTokens
from cp_server.identity.component import install
from cp_server.identity.signing import load_or_create_signing_key
from cp_server.settings import CpSettings
from cp_server.store.schema import directions, pairs, white_labels
from tests.support.pki import PkiFixture
from xwl_runtime import db
from xwl_runtime.clock import Clock, SystemClock
from xwl_runtime.identity import Identity
from xwl_runtime.server import Listener, RunningServer, start_server
from xwl_runtime.tls import ReloadableServerCredentials, server_tls_only_credentials

REPO = Path(__file__).resolve().parents[3]
MIGRATIONS = REPO / "cp_server" / "store" / "migrations"


def migrate(url: str) -> None:
    """Apply every CP migration branch (identity, core, …) as the CP does at start."""
    db.upgrade(url, MIGRATIONS, version_table="cp_alembic_version")


@dataclass
class IdentityCp:
    """The running CP and what tests inspect."""

    server: RunningServer
    engine: AsyncEngine
    ctx: CpContext
    bootstrap: BootstrapTokens
    audit: AuditLog
    pki: PkiFixture

    @property
    def mtls_target(self) -> str:
        return f"127.0.0.1:{self.server.ports[0]}"

    @property
    def enroll_target(self) -> str:
        return f"127.0.0.1:{self.server.ports[1]}"

    async def audit_actions(self) -> list[tuple[str, str]]:
        """(action, subject) of every committed audit record, in order."""
        return [(e.action, e.subject) for e in await self.audit.list(self.engine, after_seq=0, limit=1000)]

    async def audit_entries(self) -> list[AuditEntry]:
        return await self.audit.list(self.engine, after_seq=0, limit=1000)

    async def register_wl(self, *wl_ids: str, dns_names: tuple[str, ...] = ()) -> None:
        """Put WLs in the registry table directly (the admin RPCs are not part of these tests)."""
        now = dt.datetime.now(dt.UTC)
        async with self.engine.begin() as conn:
            for wl_id in wl_ids:
                await conn.execute(white_labels.insert().values(
                    wl_id=wl_id, name=wl_id, currency=f"XPY-{wl_id[-1].upper()}", currency_decimals=2,
                    reference_rate="1", trader_endpoint="127.0.0.1:1", created_at=now, updated_at=now,
                    changed_version=0, dns_names=" ".join(dns_names)))

    async def open_pair(self, a: str, b: str, *, status: str = "ACTIVE", blocked_importer: str = "") -> None:
        """A pair row and its two direction rows directly; ``blocked_importer`` has imports disabled."""
        now = dt.datetime.now(dt.UTC)
        async with self.engine.begin() as conn:
            await conn.execute(pairs.insert().values(
                wl_a=min(a, b), wl_b=max(a, b), status=status, imbalance_limit="1000", fx_rate="1", fx_version=1,
                imports_frozen=False, created_at=now, updated_at=now, changed_version=0))
            for exporter, importer in ((a, b), (b, a)):
                await conn.execute(directions.insert().values(
                    exporter=exporter, importer=importer, import_enabled=importer != blocked_importer,
                    destination_visible=True, export_delay_s=0, changed_version=0))

    async def token_for(self, wl_id: str, ttl: dt.timedelta = dt.timedelta(hours=1)) -> str:
        token, _ = await self.bootstrap.create(wl_id, ttl)
        return token


@asynccontextmanager
async def running_identity_cp(
    pki: PkiFixture, db_url: str, *, clock: Clock | None = None,
    cert_lifetime: dt.timedelta = dt.timedelta(hours=24), mtls_listen: str = "127.0.0.1:0",
    max_identity_age: dt.timedelta = CpSettings.max_identity_age,
) -> AsyncIterator[IdentityCp]:
    await asyncio.to_thread(migrate, db_url)
    engine = db.create_engine(db_url)
    clock = clock or SystemClock()
    material = pki.material(Identity.cp())
    ca = pki.dir.load_ca()
    audit = AuditLog(ca.key, clock)
    settings = CpSettings(db_url=db_url, pki_dir=pki.dir.root, node_cert_lifetime=cert_lifetime,
                          max_identity_age=max_identity_age)
    ctx = CpContext(
        settings=settings, engine=engine, clock=clock, ca=ca, tls=material,
        jwt_key=load_or_create_signing_key(pki.dir.root), audit=audit,
    )
    component = install(ctx)
    server = await start_server(
        registrations=component.registrations,
        service_names=component.service_names,
        listeners=[
            Listener(mtls_listen, ReloadableServerCredentials(material).credentials),
            Listener("127.0.0.1:0", server_tls_only_credentials(material)),
        ],
        authz_table=CP_AUTHZ,
    )
    try:
        yield IdentityCp(server, engine, ctx, BootstrapTokens(engine, clock), audit, pki)
    finally:
        await server.stop(0)
        await engine.dispose()
