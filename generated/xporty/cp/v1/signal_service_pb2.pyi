import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xporty.cp.v1 import signal_pb2 as _signal_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchSignalsRequest(_message.Message):
    __slots__ = ("wl_id", "after_sequence")
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    after_sequence: int
    def __init__(self, wl_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchSignalsResponse(_message.Message):
    __slots__ = ("signal", "heartbeat_sequence")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    signal: _signal_pb2.Signal
    heartbeat_sequence: int
    def __init__(self, signal: _Optional[_Union[_signal_pb2.Signal, _Mapping]] = ..., heartbeat_sequence: _Optional[int] = ...) -> None: ...

class AckSignalRequest(_message.Message):
    __slots__ = ("signal_id", "effective_time")
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    signal_id: str
    effective_time: _timestamp_pb2.Timestamp
    def __init__(self, signal_id: _Optional[str] = ..., effective_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AckSignalResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SendSignalRequest(_message.Message):
    __slots__ = ("kind", "exporter_wl", "importer_wl", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: _signal_pb2.SignalKind
    exporter_wl: str
    importer_wl: str
    reason: str
    def __init__(self, kind: _Optional[_Union[_signal_pb2.SignalKind, str]] = ..., exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SendSignalResponse(_message.Message):
    __slots__ = ("signal",)
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    signal: _signal_pb2.Signal
    def __init__(self, signal: _Optional[_Union[_signal_pb2.Signal, _Mapping]] = ...) -> None: ...
