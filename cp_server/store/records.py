"""Domain records of the CP store (what rows mean), and the whole policy world at one version."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .validation import fmt

if TYPE_CHECKING:
    from .rollout_records import FlagRecord, RolloutRecord
    from .trust_records import RevokedRecord, TokenKeyRecord


class Status(enum.Enum):
    """Relationship status of a pair."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    BLOCKED = "BLOCKED"


def ordered(wl_x: str, wl_y: str) -> tuple[str, str]:
    """The stored order of a pair: (smaller id, greater id)."""
    return (wl_x, wl_y) if wl_x < wl_y else (wl_y, wl_x)


@dataclass(frozen=True)
class WlRecord:
    """One registered WL."""

    wl_id: str
    name: str
    currency: str
    currency_decimals: int
    reference_rate: Decimal
    trader_endpoint: str
    created_at: dt.datetime
    updated_at: dt.datetime
    changed_version: int
    dns_names: tuple[str, ...] = ()
    """Operator-set DNS names of the WL node's certificate (besides the CA-assigned pinned name)."""

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> WlRecord:
        values = dict(row)
        values["reference_rate"] = Decimal(values["reference_rate"])
        values["dns_names"] = tuple((values.get("dns_names") or "").split())
        return cls(**values)

    def audit_state(self) -> dict[str, Any]:
        """What the audit log records of this WL (timestamps and versions are in the audit record itself)."""
        return {
            "wl_id": self.wl_id,
            "name": self.name,
            "currency": self.currency,
            "currency_decimals": self.currency_decimals,
            "reference_rate": fmt(self.reference_rate),
            "trader_endpoint": self.trader_endpoint,
            "dns_names": list(self.dns_names),
        }


@dataclass(frozen=True)
class DirectionRecord:
    """One direction exporter -> importer of a pair."""

    exporter: str
    importer: str
    import_enabled: bool
    destination_visible: bool
    export_delay_s: int
    changed_version: int

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> DirectionRecord:
        return cls(**dict(row))

    def audit_state(self) -> dict[str, Any]:
        return {
            "exporter_wl": self.exporter,
            "importer_wl": self.importer,
            "import_enabled": self.import_enabled,
            "destination_visible": self.destination_visible,
            "export_delay_s": self.export_delay_s,
        }


@dataclass(frozen=True)
class PairRecord:
    """One unordered pair {wl_a, wl_b}, wl_a < wl_b, with its two directions (a->b first, then b->a)."""

    wl_a: str
    wl_b: str
    status: Status
    imbalance_limit: Decimal
    fx_rate: Decimal
    fx_version: int
    imports_frozen: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    changed_version: int
    directions: tuple[DirectionRecord, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[Any, Any], directions: tuple[DirectionRecord, ...] = ()) -> PairRecord:
        values = dict(row)
        values["status"] = Status(values["status"])
        values["imbalance_limit"] = Decimal(values["imbalance_limit"])
        values["fx_rate"] = Decimal(values["fx_rate"])
        return cls(**values, directions=directions)

    @property
    def key(self) -> tuple[str, str]:
        return (self.wl_a, self.wl_b)

    @property
    def last_changed_version(self) -> int:
        """Newest version at which the pair or one of its directions changed."""
        return max([self.changed_version, *(d.changed_version for d in self.directions)])

    def audit_state(self) -> dict[str, Any]:
        return {
            "wl_a": self.wl_a,
            "wl_b": self.wl_b,
            "status": self.status.value,
            "imbalance_limit": fmt(self.imbalance_limit),
            "fx_rate": fmt(self.fx_rate),
            "fx_version": self.fx_version,
            "imports_frozen": self.imports_frozen,
            "directions": [d.audit_state() for d in self.directions],
        }


@dataclass(frozen=True)
class World:
    """Everything the policy views are built from, read in one consistent snapshot at ``version``."""

    version: int
    loaded_at: dt.datetime
    white_labels: Mapping[str, WlRecord]
    pairs: Mapping[tuple[str, str], PairRecord]
    partners: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """For each WL, the WLs it has a pair with, sorted."""
    revoked: Mapping[str, RevokedRecord] = field(default_factory=dict)
    """Revoked certificates not yet expired, by serial."""
    token_keys: tuple[TokenKeyRecord, ...] = ()
    """Rotated JWT verification keys still published, the signing one first (empty before any rotation)."""
    flags: Mapping[tuple[str, str], FlagRecord] = field(default_factory=dict)
    """Feature flags by (wl_id, name)."""
    rollouts: Mapping[tuple[str, str], RolloutRecord] = field(default_factory=dict)
    """Direction rollouts by (exporter, importer)."""
    audit_head: tuple[int, str] | None = None
    """The stored ``(audit_seq, audit_head)`` in the same snapshot: it covers every audit record of ``version``."""
