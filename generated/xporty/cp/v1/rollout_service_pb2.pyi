import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xporty.cp.v1 import rollout_pb2 as _rollout_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SetFeatureFlagRequest(_message.Message):
    __slots__ = ("flag", "reason", "force")
    FLAG_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    flag: _rollout_pb2.FeatureFlag
    reason: str
    force: bool
    def __init__(self, flag: _Optional[_Union[_rollout_pb2.FeatureFlag, _Mapping]] = ..., reason: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class SetFeatureFlagResponse(_message.Message):
    __slots__ = ("flag", "version")
    FLAG_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    flag: _rollout_pb2.FeatureFlag
    version: int
    def __init__(self, flag: _Optional[_Union[_rollout_pb2.FeatureFlag, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class ListFeatureFlagsRequest(_message.Message):
    __slots__ = ("wl_id",)
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    def __init__(self, wl_id: _Optional[str] = ...) -> None: ...

class ListFeatureFlagsResponse(_message.Message):
    __slots__ = ("flags",)
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    flags: _containers.RepeatedCompositeFieldContainer[_rollout_pb2.FeatureFlag]
    def __init__(self, flags: _Optional[_Iterable[_Union[_rollout_pb2.FeatureFlag, _Mapping]]] = ...) -> None: ...

class ListFeatureFlagHistoryRequest(_message.Message):
    __slots__ = ("wl_id", "name")
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    name: str
    def __init__(self, wl_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class FeatureFlagChange(_message.Message):
    __slots__ = ("sequence", "create_time", "actor", "before_json", "after_json", "correlation_id")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    BEFORE_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_JSON_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    create_time: _timestamp_pb2.Timestamp
    actor: str
    before_json: str
    after_json: str
    correlation_id: str
    def __init__(self, sequence: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., before_json: _Optional[str] = ..., after_json: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class ListFeatureFlagHistoryResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[FeatureFlagChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[FeatureFlagChange, _Mapping]]] = ...) -> None: ...

class ConfigureRolloutRequest(_message.Message):
    __slots__ = ("exporter_wl", "importer_wl", "stage", "pilot", "expansion", "step_back_on_breach", "reason", "force")
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PILOT_FIELD_NUMBER: _ClassVar[int]
    EXPANSION_FIELD_NUMBER: _ClassVar[int]
    STEP_BACK_ON_BREACH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    exporter_wl: str
    importer_wl: str
    stage: _rollout_pb2.RolloutStage
    pilot: RolloutLimitsInput
    expansion: RolloutLimitsInput
    step_back_on_breach: bool
    reason: str
    force: bool
    def __init__(self, exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., stage: _Optional[_Union[_rollout_pb2.RolloutStage, str]] = ..., pilot: _Optional[_Union[RolloutLimitsInput, _Mapping]] = ..., expansion: _Optional[_Union[RolloutLimitsInput, _Mapping]] = ..., step_back_on_breach: _Optional[bool] = ..., reason: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RolloutLimitsInput(_message.Message):
    __slots__ = ("cohort_buyer_references", "cohort_basis_points", "max_order_value", "daily_value_cap")
    COHORT_BUYER_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    COHORT_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_ORDER_VALUE_FIELD_NUMBER: _ClassVar[int]
    DAILY_VALUE_CAP_FIELD_NUMBER: _ClassVar[int]
    cohort_buyer_references: _containers.RepeatedScalarFieldContainer[str]
    cohort_basis_points: int
    max_order_value: str
    daily_value_cap: str
    def __init__(self, cohort_buyer_references: _Optional[_Iterable[str]] = ..., cohort_basis_points: _Optional[int] = ..., max_order_value: _Optional[str] = ..., daily_value_cap: _Optional[str] = ...) -> None: ...

class ConfigureRolloutResponse(_message.Message):
    __slots__ = ("rollout", "version")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    rollout: _rollout_pb2.DirectionRollout
    version: int
    def __init__(self, rollout: _Optional[_Union[_rollout_pb2.DirectionRollout, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class PromoteRolloutRequest(_message.Message):
    __slots__ = ("exporter_wl", "importer_wl", "reason")
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    exporter_wl: str
    importer_wl: str
    reason: str
    def __init__(self, exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PromoteRolloutResponse(_message.Message):
    __slots__ = ("rollout", "version")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    rollout: _rollout_pb2.DirectionRollout
    version: int
    def __init__(self, rollout: _Optional[_Union[_rollout_pb2.DirectionRollout, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class HoldRolloutRequest(_message.Message):
    __slots__ = ("exporter_wl", "importer_wl", "held", "reason")
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    exporter_wl: str
    importer_wl: str
    held: bool
    reason: str
    def __init__(self, exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., held: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class HoldRolloutResponse(_message.Message):
    __slots__ = ("rollout", "version")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    rollout: _rollout_pb2.DirectionRollout
    version: int
    def __init__(self, rollout: _Optional[_Union[_rollout_pb2.DirectionRollout, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class RollbackRolloutRequest(_message.Message):
    __slots__ = ("exporter_wl", "importer_wl", "reason")
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    exporter_wl: str
    importer_wl: str
    reason: str
    def __init__(self, exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RollbackRolloutResponse(_message.Message):
    __slots__ = ("rollout", "version")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    rollout: _rollout_pb2.DirectionRollout
    version: int
    def __init__(self, rollout: _Optional[_Union[_rollout_pb2.DirectionRollout, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class ListRolloutsRequest(_message.Message):
    __slots__ = ("wl_id",)
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    def __init__(self, wl_id: _Optional[str] = ...) -> None: ...

class ListRolloutsResponse(_message.Message):
    __slots__ = ("rollouts",)
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    rollouts: _containers.RepeatedCompositeFieldContainer[_rollout_pb2.DirectionRollout]
    def __init__(self, rollouts: _Optional[_Iterable[_Union[_rollout_pb2.DirectionRollout, _Mapping]]] = ...) -> None: ...
