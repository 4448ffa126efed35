import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xporty.cp.v1 import analytics_pb2 as _analytics_pb2
from xporty.cp.v1 import signal_pb2 as _signal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetBalancesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetBalancesResponse(_message.Message):
    __slots__ = ("balances",)
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    balances: _containers.RepeatedCompositeFieldContainer[_analytics_pb2.PairBalance]
    def __init__(self, balances: _Optional[_Iterable[_Union[_analytics_pb2.PairBalance, _Mapping]]] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("open_only",)
    OPEN_ONLY_FIELD_NUMBER: _ClassVar[int]
    open_only: bool
    def __init__(self, open_only: _Optional[bool] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[_analytics_pb2.Alert]
    def __init__(self, alerts: _Optional[_Iterable[_Union[_analytics_pb2.Alert, _Mapping]]] = ...) -> None: ...

class ListSignalsRequest(_message.Message):
    __slots__ = ("page_size",)
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    def __init__(self, page_size: _Optional[int] = ...) -> None: ...

class ListSignalsResponse(_message.Message):
    __slots__ = ("signals",)
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    signals: _containers.RepeatedCompositeFieldContainer[_signal_pb2.Signal]
    def __init__(self, signals: _Optional[_Iterable[_Union[_signal_pb2.Signal, _Mapping]]] = ...) -> None: ...

class ListDiscrepanciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDiscrepanciesResponse(_message.Message):
    __slots__ = ("discrepancies",)
    DISCREPANCIES_FIELD_NUMBER: _ClassVar[int]
    discrepancies: _containers.RepeatedCompositeFieldContainer[_analytics_pb2.Discrepancy]
    def __init__(self, discrepancies: _Optional[_Iterable[_Union[_analytics_pb2.Discrepancy, _Mapping]]] = ...) -> None: ...

class GetSloReportRequest(_message.Message):
    __slots__ = ("window_seconds",)
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    window_seconds: int
    def __init__(self, window_seconds: _Optional[int] = ...) -> None: ...

class GetSloReportResponse(_message.Message):
    __slots__ = ("figures", "generate_time", "window_seconds", "sync_lags")
    FIGURES_FIELD_NUMBER: _ClassVar[int]
    GENERATE_TIME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SYNC_LAGS_FIELD_NUMBER: _ClassVar[int]
    figures: _containers.RepeatedCompositeFieldContainer[_analytics_pb2.SloFigure]
    generate_time: _timestamp_pb2.Timestamp
    window_seconds: int
    sync_lags: _containers.RepeatedCompositeFieldContainer[_analytics_pb2.CatalogSyncLag]
    def __init__(self, figures: _Optional[_Iterable[_Union[_analytics_pb2.SloFigure, _Mapping]]] = ..., generate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_seconds: _Optional[int] = ..., sync_lags: _Optional[_Iterable[_Union[_analytics_pb2.CatalogSyncLag, _Mapping]]] = ...) -> None: ...
