"""Catalog nodes built in-process, without a CP: for the sync benchmark and tests.

Each node is the real thing minus the policy agent and the CP: its own store (all node migrations), every
feature from the composition root (``wl_node.app.build_features``) on a real grpc.aio server with mTLS
(certificates from a ``PkiDir``), the node's authorization table and the production pipeline, and a
``PolicyState`` fed with views built here by ``World`` (what the CP would push: WL registry + pair policies).
Only the catalog's sync loop runs; the CP channel points nowhere and is never used.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import duration_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from wl_node.app import NodeFeatures, build_features
from wl_node.authz import TABLE as NODE_AUTHZ
from wl_node.cadence import IdleCadence
from wl_node.catalog.component import Catalog
from wl_node.catalog.snapshot import BeforeCommit
from wl_node.catalog.sync import SyncSettings
from wl_node.context import NodeContext
from wl_node.cp_channel import CpChannel, cp_channel_factory
from wl_node.policy.state import PolicyState
from wl_node.settings import NodeSettings
from wl_node.store import migrate
from xporty.cp.v1 import policy_pb2, registry_pb2
from xwl_runtime import db
from xwl_runtime.clock import Clock, SystemClock
from xwl_runtime.fieldcrypt import KeyMaterial, Keyring, PlaintextKeyring
from xwl_runtime.identity import Identity
from xwl_runtime.lifecycle import Lifecycle
from xwl_runtime.pki import PkiDir
from xwl_runtime.server import Listener, RunningServer, start_server
from xwl_runtime.tls import ReloadableServerCredentials, TlsMaterial

ACTIVE = policy_pb2.RELATIONSHIP_STATUS_ACTIVE
PAUSED = policy_pb2.RELATIONSHIP_STATUS_PAUSED
BLOCKED = policy_pb2.RELATIONSHIP_STATUS_BLOCKED


@dataclass
class Direction:
    """One direction's policy (exporter → importer)."""

    import_enabled: bool = True
    destination_visible: bool = True
    export_delay: dt.timedelta = dt.timedelta(0)


@dataclass
class Pair:
    """One pair's policy; ``directions`` keyed by (exporter, importer)."""

    wl_a: str
    wl_b: str
    status: int = ACTIVE
    fx_rate: str = "1"
    fx_version: int = 1
    imports_frozen: bool = False
    directions: dict[tuple[str, str], Direction] = field(default_factory=dict)

    def direction(self, exporter: str, importer: str) -> Direction:
        return self.directions.setdefault((exporter, importer), Direction())


@dataclass
class CatalogNode:
    """A running in-process node."""

    wl_id: str
    settings: NodeSettings
    state: PolicyState
    features: NodeFeatures
    server: RunningServer
    engine: AsyncEngine
    cp: CpChannel
    lifecycle: Lifecycle

    @property
    def catalog(self) -> Catalog:
        return self.features.catalog

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def start_loops(self) -> None:
        """Start the catalog's loops (sync, supervisor); the rest of the node's loops stay off."""
        self.lifecycle.start_loops(self.catalog.component.loops)

    async def stop_loops(self) -> None:
        await self.lifecycle.stop_loops()

    async def close(self) -> None:
        await self.close_with_grace(0)

    async def close_with_grace(self, grace: float) -> None:
        """Stop as a node process does: calls in flight get ``grace`` seconds."""
        await self.lifecycle.stop(grace)


async def start_node(
    wl_id: str, db_url: str, pki: PkiDir, *, clock: Clock | None = None, pii_apps: Sequence[str] = (),
    sync_settings: SyncSettings | None = None, before_commit: BeforeCommit | None = None, run_loops: bool = True,
    contact_grants: Sequence[str] = (),
    cadence: IdleCadence | None = None, plaintext: bool = False,
) -> CatalogNode:
    """Migrate ``db_url``, build the node's features and serve them over mTLS on an ephemeral port; ``plaintext``:
    personal data stored as given (the benches' unencrypted twin runs)."""
    identity = Identity.wl(wl_id)
    if not pki.has(identity):
        pki.issue(identity)
    material = TlsMaterial.from_pki(pki, identity)
    await asyncio.to_thread(migrate, db_url)
    engine = db.create_engine(db_url)
    settings = NodeSettings(wl_id=wl_id, pki_dir=pki.root, cp_target="127.0.0.1:1", db_url=db_url,
                            listen="127.0.0.1:0", pii_apps=tuple(pii_apps), contact_grants=tuple(contact_grants),
                            cadence=cadence or IdleCadence())
    clock = clock or SystemClock()
    state = PolicyState(wl_id, clock, dt.timedelta(days=1))
    keyring = PlaintextKeyring() if plaintext else Keyring(KeyMaterial.generate())
    ctx = NodeContext(settings=settings, engine=engine, clock=clock, tls=material, keyring=keyring)
    cp = CpChannel(cp_channel_factory(settings.cp_target, reconnect_cap_s=settings.reconnect_cap.total_seconds()),
                   material, identity=identity)
    features = build_features(ctx, state, cp, sync_settings=sync_settings, before_commit=before_commit)
    features.risk.enforcer.contact_at = clock.now()  # no CP here: the risk view counts as fresh (no signals)
    creds = ReloadableServerCredentials(material)
    server = await start_server(
        registrations=[r for c in features.components for r in c.registrations],
        service_names=[n for c in features.components for n in c.service_names],
        listeners=[Listener(settings.listen, creds.credentials)], authz_table=NODE_AUTHZ, local_wl=wl_id,
    )
    lifecycle = Lifecycle(server, features.components, closers=[cp.close, engine.dispose])
    node = CatalogNode(wl_id, settings, state, features, server, engine, cp, lifecycle)
    if run_loops:
        node.start_loops()
    return node


@dataclass
class World:
    """The CP's state of the world for in-process nodes: WLs, pairs, and a version bumped on each publish."""

    currencies: dict[str, tuple[str, int]] = field(default_factory=dict)
    pairs: dict[tuple[str, str], Pair] = field(default_factory=dict)
    nodes: dict[str, CatalogNode] = field(default_factory=dict)
    remote_endpoints: dict[str, str] = field(default_factory=dict)
    """TraderService endpoints of WLs whose nodes run in another process (the bench's exporters)."""
    version: int = 0

    def add_wl(self, node: CatalogNode, currency: str, decimals: int = 2) -> None:
        self.currencies[node.wl_id] = (currency, decimals)
        self.nodes[node.wl_id] = node

    def add_remote_wl(self, wl_id: str, endpoint: str, currency: str, decimals: int = 2) -> None:
        """A WL served by another process: in the views, not published to."""
        self.currencies[wl_id] = (currency, decimals)
        self.remote_endpoints[wl_id] = endpoint

    def pair(self, x: str, y: str, **fields: object) -> Pair:
        a, b = sorted((x, y))
        pair = self.pairs.get((a, b))
        if pair is None:
            pair = self.pairs[(a, b)] = Pair(a, b)
            pair.direction(a, b)
            pair.direction(b, a)
        for key, value in fields.items():
            setattr(pair, key, value)
        return pair

    def view_for(self, wl_id: str) -> policy_pb2.PolicyView:
        view = policy_pb2.PolicyView(wl_id=wl_id, version=self.version)
        view.generate_time.FromDatetime(dt.datetime.now(dt.UTC))
        mine = [p for p in self.pairs.values() if wl_id in (p.wl_a, p.wl_b)]
        members = {wl_id} | {p.wl_a for p in mine} | {p.wl_b for p in mine}
        for member in sorted(members):
            currency, decimals = self.currencies[member]
            node = self.nodes.get(member)
            view.white_labels.append(registry_pb2.WhiteLabel(
                wl_id=member, name=f"Market {member}", currency=currency, currency_decimals=decimals,
                reference_rate="1",
                trader_endpoint=node.endpoint if node else self.remote_endpoints.get(member, "127.0.0.1:1")))
        for p in mine:
            msg = view.pairs.add(wl_a=p.wl_a, wl_b=p.wl_b, status=p.status, imbalance_limit="1000000",
                                 fx_rate=p.fx_rate, fx_version=p.fx_version, imports_frozen=p.imports_frozen,
                                 changed_version=self.version)
            for (exporter, importer), d in sorted(p.directions.items()):
                delay = duration_pb2.Duration()
                delay.FromTimedelta(d.export_delay)
                msg.directions.add(exporter_wl=exporter, importer_wl=importer, import_enabled=d.import_enabled,
                                   destination_visible=d.destination_visible, export_delay=delay)
        return view

    async def publish(self, only: Iterable[str] | None = None) -> None:
        """Bump the version and apply each node's view (``only``: just those nodes, e.g. to model lag)."""
        self.version += 1
        for wl_id, node in self.nodes.items():
            if only is None or wl_id in set(only):
                await node.state.apply(self.view_for(wl_id))

    async def close(self) -> None:
        # Sync loops first (so importers do not log failures for exporters going away), then servers.
        for node in self.nodes.values():
            await node.stop_loops()
        for node in reversed(list(self.nodes.values())):
            await node.close()


def pki_at(root: Path) -> PkiDir:
    """A PKI directory with a CA (created when absent)."""
    pki = PkiDir(root)
    if not pki.ca_cert.exists():
        pki.init_ca()
    return pki
