import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LatencyHistogram(_message.Message):
    __slots__ = ("bounds_seconds", "counts")
    BOUNDS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    bounds_seconds: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, bounds_seconds: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class PeerOperations(_message.Message):
    __slots__ = ("exporter_wl", "attempts", "confirmed", "denied", "errors", "confirmation", "sync_lag_seconds", "offer_views", "sync_lag")
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATION_FIELD_NUMBER: _ClassVar[int]
    SYNC_LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OFFER_VIEWS_FIELD_NUMBER: _ClassVar[int]
    SYNC_LAG_FIELD_NUMBER: _ClassVar[int]
    exporter_wl: str
    attempts: int
    confirmed: int
    denied: int
    errors: int
    confirmation: LatencyHistogram
    sync_lag_seconds: float
    offer_views: int
    sync_lag: SyncLag
    def __init__(self, exporter_wl: _Optional[str] = ..., attempts: _Optional[int] = ..., confirmed: _Optional[int] = ..., denied: _Optional[int] = ..., errors: _Optional[int] = ..., confirmation: _Optional[_Union[LatencyHistogram, _Mapping]] = ..., sync_lag_seconds: _Optional[float] = ..., offer_views: _Optional[int] = ..., sync_lag: _Optional[_Union[SyncLag, _Mapping]] = ...) -> None: ...

class SyncLag(_message.Message):
    __slots__ = ("level_seconds", "seconds", "time", "stopped")
    LEVEL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    level_seconds: float
    seconds: float
    time: _timestamp_pb2.Timestamp
    stopped: bool
    def __init__(self, level_seconds: _Optional[float] = ..., seconds: _Optional[float] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stopped: _Optional[bool] = ...) -> None: ...

class BreakerTransition(_message.Message):
    __slots__ = ("peer_wl", "to_state", "time", "reason")
    PEER_WL_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    peer_wl: str
    to_state: str
    time: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, peer_wl: _Optional[str] = ..., to_state: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...
