import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xporty.cp.v1 import audit_pb2 as _audit_pb2
from xporty.cp.v1 import identity_pb2 as _identity_pb2
from xporty.cp.v1 import registry_pb2 as _registry_pb2
from xporty.cp.v1 import rollout_pb2 as _rollout_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RelationshipStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELATIONSHIP_STATUS_UNSPECIFIED: _ClassVar[RelationshipStatus]
    RELATIONSHIP_STATUS_ACTIVE: _ClassVar[RelationshipStatus]
    RELATIONSHIP_STATUS_PAUSED: _ClassVar[RelationshipStatus]
    RELATIONSHIP_STATUS_BLOCKED: _ClassVar[RelationshipStatus]
RELATIONSHIP_STATUS_UNSPECIFIED: RelationshipStatus
RELATIONSHIP_STATUS_ACTIVE: RelationshipStatus
RELATIONSHIP_STATUS_PAUSED: RelationshipStatus
RELATIONSHIP_STATUS_BLOCKED: RelationshipStatus

class DirectionPolicy(_message.Message):
    __slots__ = ("exporter_wl", "importer_wl", "import_enabled", "destination_visible", "export_delay")
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORT_ENABLED_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_VISIBLE_FIELD_NUMBER: _ClassVar[int]
    EXPORT_DELAY_FIELD_NUMBER: _ClassVar[int]
    exporter_wl: str
    importer_wl: str
    import_enabled: bool
    destination_visible: bool
    export_delay: _duration_pb2.Duration
    def __init__(self, exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., import_enabled: _Optional[bool] = ..., destination_visible: _Optional[bool] = ..., export_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class PairPolicy(_message.Message):
    __slots__ = ("wl_a", "wl_b", "status", "imbalance_limit", "fx_rate", "fx_version", "imports_frozen", "directions", "changed_version")
    WL_A_FIELD_NUMBER: _ClassVar[int]
    WL_B_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IMBALANCE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FX_RATE_FIELD_NUMBER: _ClassVar[int]
    FX_VERSION_FIELD_NUMBER: _ClassVar[int]
    IMPORTS_FROZEN_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_VERSION_FIELD_NUMBER: _ClassVar[int]
    wl_a: str
    wl_b: str
    status: RelationshipStatus
    imbalance_limit: str
    fx_rate: str
    fx_version: int
    imports_frozen: bool
    directions: _containers.RepeatedCompositeFieldContainer[DirectionPolicy]
    changed_version: int
    def __init__(self, wl_a: _Optional[str] = ..., wl_b: _Optional[str] = ..., status: _Optional[_Union[RelationshipStatus, str]] = ..., imbalance_limit: _Optional[str] = ..., fx_rate: _Optional[str] = ..., fx_version: _Optional[int] = ..., imports_frozen: _Optional[bool] = ..., directions: _Optional[_Iterable[_Union[DirectionPolicy, _Mapping]]] = ..., changed_version: _Optional[int] = ...) -> None: ...

class PolicyView(_message.Message):
    __slots__ = ("wl_id", "version", "generate_time", "white_labels", "pairs", "token_keys", "revoked_certificates", "audit_checkpoint", "feature_flags", "rollouts")
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GENERATE_TIME_FIELD_NUMBER: _ClassVar[int]
    WHITE_LABELS_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_KEYS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    AUDIT_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FLAGS_FIELD_NUMBER: _ClassVar[int]
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    version: int
    generate_time: _timestamp_pb2.Timestamp
    white_labels: _containers.RepeatedCompositeFieldContainer[_registry_pb2.WhiteLabel]
    pairs: _containers.RepeatedCompositeFieldContainer[PairPolicy]
    token_keys: _containers.RepeatedCompositeFieldContainer[_identity_pb2.VerificationKey]
    revoked_certificates: _containers.RepeatedCompositeFieldContainer[RevokedCertificate]
    audit_checkpoint: _audit_pb2.AuditCheckpoint
    feature_flags: _containers.RepeatedCompositeFieldContainer[_rollout_pb2.FeatureFlag]
    rollouts: _containers.RepeatedCompositeFieldContainer[_rollout_pb2.DirectionRollout]
    def __init__(self, wl_id: _Optional[str] = ..., version: _Optional[int] = ..., generate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., white_labels: _Optional[_Iterable[_Union[_registry_pb2.WhiteLabel, _Mapping]]] = ..., pairs: _Optional[_Iterable[_Union[PairPolicy, _Mapping]]] = ..., token_keys: _Optional[_Iterable[_Union[_identity_pb2.VerificationKey, _Mapping]]] = ..., revoked_certificates: _Optional[_Iterable[_Union[RevokedCertificate, _Mapping]]] = ..., audit_checkpoint: _Optional[_Union[_audit_pb2.AuditCheckpoint, _Mapping]] = ..., feature_flags: _Optional[_Iterable[_Union[_rollout_pb2.FeatureFlag, _Mapping]]] = ..., rollouts: _Optional[_Iterable[_Union[_rollout_pb2.DirectionRollout, _Mapping]]] = ...) -> None: ...

class RevokedCertificate(_message.Message):
    __slots__ = ("serial", "wl_id", "revoke_time", "reason")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    serial: str
    wl_id: str
    revoke_time: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, serial: _Optional[str] = ..., wl_id: _Optional[str] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...
