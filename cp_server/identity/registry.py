"""Read-only view of the CP's WL registry, as far as identity needs it: "is this WL registered?", "which DNS
names did an operator set for its node's certificate?", "which peers may this WL call now?".

The registry tables (``white_labels``, ``pairs``, ``directions``) belong to the CP store (the ``cp_core``
migration branch, always applied with this one). They are read with plain SQL so this package does not depend on
that store's Python schema. A missing table is an error (fail closed), never "everyone is registered".
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

REGISTRY_TABLE = "white_labels"
_EXISTS = sa.text(f"SELECT 1 FROM {REGISTRY_TABLE} WHERE wl_id = :wl_id")
_CALLABLE_PEERS = sa.text(
    "SELECT d.exporter FROM directions d JOIN pairs p"
    " ON (p.wl_a = d.exporter AND p.wl_b = d.importer) OR (p.wl_a = d.importer AND p.wl_b = d.exporter)"
    " WHERE d.importer = :wl_id AND d.import_enabled AND p.status = 'ACTIVE' ORDER BY d.exporter"
)
"""The exporters a WL may import from now: the same rule as the node's own view (an ACTIVE pair, the direction
toward the WL with imports enabled), read from the store the views are built from."""
_DNS_NAMES = sa.text(f"SELECT dns_names FROM {REGISTRY_TABLE} WHERE wl_id = :wl_id")


class RegistryLookup:
    """Answers registry questions for identity (read-only; the registry is ``cp_server.store.registry.WlRegistry``).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def is_registered(self, wl_id: str) -> bool:
        async with self._engine.connect() as conn:
            return (await conn.execute(_EXISTS, {"wl_id": wl_id})).first() is not None

    async def callable_peers(self, wl_id: str) -> list[str]:
        """The WLs ``wl_id`` may call to place orders now (exporters it may import from), sorted."""
        async with self._engine.connect() as conn:
            return [row[0] for row in await conn.execute(_CALLABLE_PEERS, {"wl_id": wl_id})]

    async def dns_names_in(self, conn: AsyncConnection, wl_id: str) -> tuple[str, ...]:
        """The endpoint names an operator registered for ``wl_id`` (validated on write), in the caller's
        transaction; none for an unregistered WL."""
        row = (await conn.execute(_DNS_NAMES, {"wl_id": wl_id})).first()
        return tuple((row[0] or "").split()) if row is not None else ()
