import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureFlagKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEATURE_FLAG_KIND_UNSPECIFIED: _ClassVar[FeatureFlagKind]
    FEATURE_FLAG_KIND_BOOLEAN: _ClassVar[FeatureFlagKind]
    FEATURE_FLAG_KIND_PERCENTAGE: _ClassVar[FeatureFlagKind]

class RolloutStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLLOUT_STAGE_UNSPECIFIED: _ClassVar[RolloutStage]
    ROLLOUT_STAGE_PILOT: _ClassVar[RolloutStage]
    ROLLOUT_STAGE_EXPANSION: _ClassVar[RolloutStage]
    ROLLOUT_STAGE_GENERAL: _ClassVar[RolloutStage]
FEATURE_FLAG_KIND_UNSPECIFIED: FeatureFlagKind
FEATURE_FLAG_KIND_BOOLEAN: FeatureFlagKind
FEATURE_FLAG_KIND_PERCENTAGE: FeatureFlagKind
ROLLOUT_STAGE_UNSPECIFIED: RolloutStage
ROLLOUT_STAGE_PILOT: RolloutStage
ROLLOUT_STAGE_EXPANSION: RolloutStage
ROLLOUT_STAGE_GENERAL: RolloutStage

class FeatureFlag(_message.Message):
    __slots__ = ("wl_id", "name", "kind", "enabled", "percent_basis_points", "default_enabled", "owner", "expire_time", "description", "changed_version")
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    PERCENT_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ENABLED_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_VERSION_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    name: str
    kind: FeatureFlagKind
    enabled: bool
    percent_basis_points: int
    default_enabled: bool
    owner: str
    expire_time: _timestamp_pb2.Timestamp
    description: str
    changed_version: int
    def __init__(self, wl_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[FeatureFlagKind, str]] = ..., enabled: _Optional[bool] = ..., percent_basis_points: _Optional[int] = ..., default_enabled: _Optional[bool] = ..., owner: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ..., changed_version: _Optional[int] = ...) -> None: ...

class RolloutLimits(_message.Message):
    __slots__ = ("cohort_buyer_hashes", "cohort_basis_points", "max_order_value", "daily_value_cap")
    COHORT_BUYER_HASHES_FIELD_NUMBER: _ClassVar[int]
    COHORT_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_ORDER_VALUE_FIELD_NUMBER: _ClassVar[int]
    DAILY_VALUE_CAP_FIELD_NUMBER: _ClassVar[int]
    cohort_buyer_hashes: _containers.RepeatedScalarFieldContainer[str]
    cohort_basis_points: int
    max_order_value: str
    daily_value_cap: str
    def __init__(self, cohort_buyer_hashes: _Optional[_Iterable[str]] = ..., cohort_basis_points: _Optional[int] = ..., max_order_value: _Optional[str] = ..., daily_value_cap: _Optional[str] = ...) -> None: ...

class DirectionRollout(_message.Message):
    __slots__ = ("exporter_wl", "importer_wl", "stage", "limits", "held", "hold_reason", "changed_version", "pilot", "expansion", "step_back_on_breach")
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    HOLD_REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGED_VERSION_FIELD_NUMBER: _ClassVar[int]
    PILOT_FIELD_NUMBER: _ClassVar[int]
    EXPANSION_FIELD_NUMBER: _ClassVar[int]
    STEP_BACK_ON_BREACH_FIELD_NUMBER: _ClassVar[int]
    exporter_wl: str
    importer_wl: str
    stage: RolloutStage
    limits: RolloutLimits
    held: bool
    hold_reason: str
    changed_version: int
    pilot: RolloutLimits
    expansion: RolloutLimits
    step_back_on_breach: bool
    def __init__(self, exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., stage: _Optional[_Union[RolloutStage, str]] = ..., limits: _Optional[_Union[RolloutLimits, _Mapping]] = ..., held: _Optional[bool] = ..., hold_reason: _Optional[str] = ..., changed_version: _Optional[int] = ..., pilot: _Optional[_Union[RolloutLimits, _Mapping]] = ..., expansion: _Optional[_Union[RolloutLimits, _Mapping]] = ..., step_back_on_breach: _Optional[bool] = ...) -> None: ...
