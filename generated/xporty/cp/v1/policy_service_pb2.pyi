import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xporty.cp.v1 import audit_pb2 as _audit_pb2
from xporty.cp.v1 import policy_pb2 as _policy_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchPoliciesRequest(_message.Message):
    __slots__ = ("wl_id", "known_version")
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWN_VERSION_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    known_version: int
    def __init__(self, wl_id: _Optional[str] = ..., known_version: _Optional[int] = ...) -> None: ...

class WatchPoliciesResponse(_message.Message):
    __slots__ = ("snapshot", "heartbeat")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    snapshot: _policy_pb2.PolicyView
    heartbeat: Heartbeat
    def __init__(self, snapshot: _Optional[_Union[_policy_pb2.PolicyView, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("version", "send_time", "audit_checkpoint")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    AUDIT_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    version: int
    send_time: _timestamp_pb2.Timestamp
    audit_checkpoint: _audit_pb2.AuditCheckpoint
    def __init__(self, version: _Optional[int] = ..., send_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audit_checkpoint: _Optional[_Union[_audit_pb2.AuditCheckpoint, _Mapping]] = ...) -> None: ...

class GetPoliciesRequest(_message.Message):
    __slots__ = ("wl_id", "known_version")
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWN_VERSION_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    known_version: int
    def __init__(self, wl_id: _Optional[str] = ..., known_version: _Optional[int] = ...) -> None: ...

class GetPoliciesResponse(_message.Message):
    __slots__ = ("not_modified", "version", "view")
    NOT_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    not_modified: bool
    version: int
    view: _policy_pb2.PolicyView
    def __init__(self, not_modified: _Optional[bool] = ..., version: _Optional[int] = ..., view: _Optional[_Union[_policy_pb2.PolicyView, _Mapping]] = ...) -> None: ...

class ReportPolicyStatusRequest(_message.Message):
    __slots__ = ("applied_version", "rejected_version", "error", "apply_time", "software_version", "contract_version", "features")
    APPLIED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REJECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    APPLY_TIME_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    applied_version: int
    rejected_version: int
    error: str
    apply_time: _timestamp_pb2.Timestamp
    software_version: str
    contract_version: str
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, applied_version: _Optional[int] = ..., rejected_version: _Optional[int] = ..., error: _Optional[str] = ..., apply_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., software_version: _Optional[str] = ..., contract_version: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class ReportPolicyStatusResponse(_message.Message):
    __slots__ = ("current_version",)
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    current_version: int
    def __init__(self, current_version: _Optional[int] = ...) -> None: ...
