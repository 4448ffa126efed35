"""What the rollout tables' rows mean, their proto form, and reading them into the policy world."""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from xporty.cp.v1 import rollout_pb2

from .protos import timestamp
from .rollout_tables import directions, flags
from .validation import fmt


class Stage(enum.Enum):
    """Rollout stage of a direction, in promotion order."""

    PILOT = "PILOT"
    EXPANSION = "EXPANSION"
    GENERAL = "GENERAL"

    @property
    def proto(self) -> rollout_pb2.RolloutStage:
        return _STAGE_PROTO[self]

    def next(self) -> Stage | None:
        order = list(Stage)
        at = order.index(self)
        return order[at + 1] if at + 1 < len(order) else None

    def previous(self) -> Stage | None:
        order = list(Stage)
        at = order.index(self)
        return order[at - 1] if at > 0 else None


_STAGE_PROTO = {Stage.PILOT: rollout_pb2.ROLLOUT_STAGE_PILOT, Stage.EXPANSION: rollout_pb2.ROLLOUT_STAGE_EXPANSION,
                Stage.GENERAL: rollout_pb2.ROLLOUT_STAGE_GENERAL}
STAGE_FROM_PROTO = {v: k for k, v in _STAGE_PROTO.items()}

KINDS = {"BOOLEAN": rollout_pb2.FEATURE_FLAG_KIND_BOOLEAN, "PERCENTAGE": rollout_pb2.FEATURE_FLAG_KIND_PERCENTAGE}
KIND_FROM_PROTO = {v: k for k, v in KINDS.items()}


@dataclass(frozen=True)
class FlagRecord:
    """One feature flag of one WL."""

    wl_id: str
    name: str
    kind: str
    enabled: bool
    percent_bp: int
    default_enabled: bool
    owner: str
    expire_time: dt.datetime
    description: str
    changed_version: int

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> FlagRecord:
        return cls(**dict(row))

    def audit_state(self) -> dict[str, Any]:
        return {"wl_id": self.wl_id, "name": self.name, "kind": self.kind, "enabled": self.enabled,
                "percent_basis_points": self.percent_bp, "default_enabled": self.default_enabled,
                "owner": self.owner, "expire_time": self.expire_time, "description": self.description}

    def to_proto(self) -> rollout_pb2.FeatureFlag:
        return rollout_pb2.FeatureFlag(
            wl_id=self.wl_id, name=self.name, kind=KINDS[self.kind], enabled=self.enabled,
            percent_basis_points=self.percent_bp, default_enabled=self.default_enabled, owner=self.owner,
            expire_time=timestamp(self.expire_time), description=self.description, changed_version=self.changed_version)


@dataclass(frozen=True)
class Limits:
    """Cohort and caps of one stage (values in the exporter's currency; None = no limit)."""

    cohort_hashes: tuple[str, ...] = ()
    cohort_bp: int = 0
    max_order_value: Decimal | None = None
    daily_value_cap: Decimal | None = None

    def to_json(self) -> str:
        return json.dumps(self.audit_state(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Limits:
        data = json.loads(text) if text else {}
        return cls(
            cohort_hashes=tuple(data.get("cohort_buyer_hashes", ())),
            cohort_bp=int(data.get("cohort_basis_points", 0)),
            max_order_value=Decimal(data["max_order_value"]) if data.get("max_order_value") else None,
            daily_value_cap=Decimal(data["daily_value_cap"]) if data.get("daily_value_cap") else None,
        )

    def audit_state(self) -> dict[str, Any]:
        return {"cohort_buyer_hashes": list(self.cohort_hashes), "cohort_basis_points": self.cohort_bp,
                "max_order_value": fmt(self.max_order_value) if self.max_order_value is not None else "",
                "daily_value_cap": fmt(self.daily_value_cap) if self.daily_value_cap is not None else ""}

    def to_proto(self) -> rollout_pb2.RolloutLimits:
        state = self.audit_state()
        return rollout_pb2.RolloutLimits(
            cohort_buyer_hashes=state["cohort_buyer_hashes"], cohort_basis_points=self.cohort_bp,
            max_order_value=state["max_order_value"], daily_value_cap=state["daily_value_cap"])


@dataclass(frozen=True)
class RolloutRecord:
    """The rollout of one direction exporter -> importer."""

    exporter: str
    importer: str
    stage: Stage
    held: bool
    hold_reason: str
    pilot: Limits
    expansion: Limits
    step_back_on_breach: bool
    changed_version: int
    slo_since: dt.datetime | None = None
    """The automatic hold judges SLO figures from this time on (None: the whole window)."""

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> RolloutRecord:
        values = dict(row)
        values["stage"] = Stage(values["stage"])
        values["pilot"] = Limits.from_json(values["pilot"])
        values["expansion"] = Limits.from_json(values["expansion"])
        return cls(**values)

    @property
    def key(self) -> tuple[str, str]:
        return (self.exporter, self.importer)

    @property
    def limits(self) -> Limits:
        """The limits in force at the current stage (none at GENERAL)."""
        if self.stage is Stage.PILOT:
            return self.pilot
        if self.stage is Stage.EXPANSION:
            return self.expansion
        return Limits(cohort_bp=10_000)

    def row(self) -> dict[str, Any]:
        return {"exporter": self.exporter, "importer": self.importer, "stage": self.stage.value, "held": self.held,
                "hold_reason": self.hold_reason, "pilot": self.pilot.to_json(),
                "expansion": self.expansion.to_json(), "step_back_on_breach": self.step_back_on_breach,
                "changed_version": self.changed_version, "slo_since": self.slo_since}

    def audit_state(self) -> dict[str, Any]:
        return {"exporter_wl": self.exporter, "importer_wl": self.importer, "stage": self.stage.value,
                "held": self.held, "hold_reason": self.hold_reason, "pilot": self.pilot.audit_state(),
                "expansion": self.expansion.audit_state(), "step_back_on_breach": self.step_back_on_breach}

    def to_proto(self) -> rollout_pb2.DirectionRollout:
        return rollout_pb2.DirectionRollout(
            exporter_wl=self.exporter, importer_wl=self.importer, stage=self.stage.proto,
            limits=self.limits.to_proto(), held=self.held, hold_reason=self.hold_reason,
            changed_version=self.changed_version, pilot=self.pilot.to_proto(), expansion=self.expansion.to_proto(),
            step_back_on_breach=self.step_back_on_breach)


_FLAGS = sa.select(flags).where(flags.c.changed_version > sa.bindparam("since"))
_DIRECTIONS = sa.select(directions).where(directions.c.changed_version > sa.bindparam("since"))


async def load_flags(
    conn: AsyncConnection, since: int, base: Mapping[tuple[str, str], FlagRecord],
) -> Mapping[tuple[str, str], FlagRecord]:
    """Every flag by (wl_id, name), in the caller's snapshot: rows changed after ``since`` overlaid on ``base``
    (every row when ``since`` is -1; rows are never deleted)."""
    found = {(r["wl_id"], r["name"]): FlagRecord.from_row(r)
             for r in (await conn.execute(_FLAGS, {"since": since})).mappings()}
    return {**base, **found} if found else base


async def load_rollouts(
    conn: AsyncConnection, since: int, base: Mapping[tuple[str, str], RolloutRecord],
) -> Mapping[tuple[str, str], RolloutRecord]:
    """Every rollout by (exporter, importer), in the caller's snapshot: rows changed after ``since`` overlaid on
    ``base`` (every row when ``since`` is -1; rows are never deleted)."""
    found = {(r["exporter"], r["importer"]): RolloutRecord.from_row(r)
             for r in (await conn.execute(_DIRECTIONS, {"since": since})).mappings()}
    return {**base, **found} if found else base
