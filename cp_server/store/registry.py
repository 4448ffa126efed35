"""The WL registry: register, update, read. Every write is a versioned, audited change."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from xwl_runtime.errors import AlreadyExists, FieldViolation, InvalidArgument, NotFound

from . import validation as v
from .changes import ChangeRunner, Committed, Tx
from .records import WlRecord
from .schema import white_labels

UNKNOWN_WL_REASON = "UNKNOWN_WL"


_LOAD_WL = sa.select(white_labels).where(white_labels.c.wl_id == sa.bindparam("wl_id"))


async def load_wl(conn: AsyncConnection, wl_id: str) -> WlRecord | None:
    row = (await conn.execute(_LOAD_WL, {"wl_id": wl_id})).mappings().first()
    return WlRecord.from_row(row) if row is not None else None


async def require_known(conn: AsyncConnection, field: str, wl_id: str) -> WlRecord:
    """The WL, or INVALID_ARGUMENT naming ``field`` when it is not registered."""
    found = await load_wl(conn, wl_id)
    if found is None:
        raise InvalidArgument(
            f"{field}: unknown WL {wl_id!r}",
            violations=[FieldViolation(field, f"unknown WL {wl_id!r}")],
            reason=UNKNOWN_WL_REASON,
        )
    return found


class WlRegistry:
    """Registers and updates WLs."""

    def __init__(self, changes: ChangeRunner) -> None:
        self._changes = changes

    async def register(
        self,
        actor: str,
        *,
        wl_id: str,
        name: str,
        currency: str,
        currency_decimals: int,
        reference_rate: str,
        trader_endpoint: str,
        dns_names: tuple[str, ...] = (),
        field_prefix: str = "white_label.",
    ) -> Committed[WlRecord]:
        """Add a WL; ALREADY_EXISTS if the id is taken."""
        p = field_prefix
        wl_id = v.wl_id(f"{p}wl_id", wl_id)
        name = v.text(f"{p}name", name)
        currency = v.currency(f"{p}currency", currency)
        decimals = v.currency_decimals(f"{p}currency_decimals", currency_decimals)
        rate = v.decimal_value(f"{p}reference_rate", reference_rate, positive=True)
        endpoint = v.endpoint(f"{p}trader_endpoint", trader_endpoint)
        names = v.dns_names(f"{p}dns_names", dns_names)

        async def body(tx: Tx) -> WlRecord:
            if await load_wl(tx.conn, wl_id) is not None:
                raise AlreadyExists(f"WL {wl_id!r} is already registered", metadata={"wl_id": wl_id})
            record = WlRecord(
                wl_id=wl_id, name=name, currency=currency, currency_decimals=decimals,
                reference_rate=Decimal(v.fmt(rate)), trader_endpoint=endpoint, created_at=tx.now,
                updated_at=tx.now, changed_version=tx.version, dns_names=names,
            )
            await tx.conn.execute(white_labels.insert().values(_row(record)))
            await tx.audit("wl.register", f"wl/{wl_id}", None, record.audit_state())
            return record

        return await self._changes.run("wl.register", actor, body)

    async def update(
        self,
        actor: str,
        *,
        wl_id: str,
        name: str | None = None,
        reference_rate: str | None = None,
        trader_endpoint: str | None = None,
        dns_names: tuple[str, ...] | None = None,
    ) -> Committed[WlRecord]:
        """Change the mutable fields given (None = keep); NOT_FOUND for an unknown WL."""
        wl_id = v.wl_id("wl_id", wl_id)
        new_name = v.text("name", name) if name is not None else None
        new_rate = (
            v.decimal_value("reference_rate", reference_rate, positive=True) if reference_rate is not None else None
        )
        new_endpoint = v.endpoint("trader_endpoint", trader_endpoint) if trader_endpoint is not None else None
        new_names = v.dns_names("dns_names.names", dns_names) if dns_names is not None else None

        async def body(tx: Tx) -> WlRecord:
            before = await load_wl(tx.conn, wl_id)
            if before is None:
                raise NotFound(f"WL {wl_id!r} is not registered", reason=UNKNOWN_WL_REASON, metadata={"wl_id": wl_id})
            after = replace(
                before,
                name=new_name if new_name is not None else before.name,
                reference_rate=Decimal(v.fmt(new_rate)) if new_rate is not None else before.reference_rate,
                trader_endpoint=new_endpoint if new_endpoint is not None else before.trader_endpoint,
                dns_names=new_names if new_names is not None else before.dns_names,
            )
            if after.audit_state() == before.audit_state():
                return before
            after = replace(after, updated_at=tx.now, changed_version=tx.version)
            await tx.conn.execute(white_labels.update().where(white_labels.c.wl_id == wl_id).values(_row(after)))
            await tx.audit("wl.update", f"wl/{wl_id}", before.audit_state(), after.audit_state())
            return after

        return await self._changes.run("wl.update", actor, body)

    async def list(self) -> list[WlRecord]:
        async with self._changes.engine.connect() as conn:
            rows = (await conn.execute(sa.select(white_labels).order_by(white_labels.c.wl_id))).mappings().all()
        return [WlRecord.from_row(r) for r in rows]

    async def get(self, wl_id: str) -> WlRecord | None:
        async with self._changes.engine.connect() as conn:
            return await load_wl(conn, wl_id)


def _row(record: WlRecord) -> dict[str, object]:
    return {
        "wl_id": record.wl_id, "name": record.name, "currency": record.currency,
        "currency_decimals": record.currency_decimals, "reference_rate": v.fmt(record.reference_rate),
        "trader_endpoint": record.trader_endpoint, "dns_names": " ".join(record.dns_names),
        "created_at": record.created_at,
        "updated_at": record.updated_at, "changed_version": record.changed_version,
    }
