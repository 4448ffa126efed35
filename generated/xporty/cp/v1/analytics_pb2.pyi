import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AlertLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_LEVEL_UNSPECIFIED: _ClassVar[AlertLevel]
    ALERT_LEVEL_OK: _ClassVar[AlertLevel]
    ALERT_LEVEL_ALERT: _ClassVar[AlertLevel]
    ALERT_LEVEL_DISABLED: _ClassVar[AlertLevel]
ALERT_LEVEL_UNSPECIFIED: AlertLevel
ALERT_LEVEL_OK: AlertLevel
ALERT_LEVEL_ALERT: AlertLevel
ALERT_LEVEL_DISABLED: AlertLevel

class PairBalance(_message.Message):
    __slots__ = ("wl_a", "wl_b", "exports_a_to_b", "exports_b_to_a", "net_delta", "limit", "utilisation", "trend_per_hour", "time_to_limit", "level")
    WL_A_FIELD_NUMBER: _ClassVar[int]
    WL_B_FIELD_NUMBER: _ClassVar[int]
    EXPORTS_A_TO_B_FIELD_NUMBER: _ClassVar[int]
    EXPORTS_B_TO_A_FIELD_NUMBER: _ClassVar[int]
    NET_DELTA_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    UTILISATION_FIELD_NUMBER: _ClassVar[int]
    TREND_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    wl_a: str
    wl_b: str
    exports_a_to_b: str
    exports_b_to_a: str
    net_delta: str
    limit: str
    utilisation: str
    trend_per_hour: str
    time_to_limit: _duration_pb2.Duration
    level: AlertLevel
    def __init__(self, wl_a: _Optional[str] = ..., wl_b: _Optional[str] = ..., exports_a_to_b: _Optional[str] = ..., exports_b_to_a: _Optional[str] = ..., net_delta: _Optional[str] = ..., limit: _Optional[str] = ..., utilisation: _Optional[str] = ..., trend_per_hour: _Optional[str] = ..., time_to_limit: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., level: _Optional[_Union[AlertLevel, str]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("alert_id", "wl_a", "wl_b", "level", "utilisation", "correlation_id", "raise_time", "open", "reason")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    WL_A_FIELD_NUMBER: _ClassVar[int]
    WL_B_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    UTILISATION_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    RAISE_TIME_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    wl_a: str
    wl_b: str
    level: AlertLevel
    utilisation: str
    correlation_id: str
    raise_time: _timestamp_pb2.Timestamp
    open: bool
    reason: str
    def __init__(self, alert_id: _Optional[str] = ..., wl_a: _Optional[str] = ..., wl_b: _Optional[str] = ..., level: _Optional[_Union[AlertLevel, str]] = ..., utilisation: _Optional[str] = ..., correlation_id: _Optional[str] = ..., raise_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., open: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class Discrepancy(_message.Message):
    __slots__ = ("order_id", "exporter_wl", "importer_wl", "correlation_id", "reason", "detect_time", "category", "export_amount", "import_amount", "export_quantity", "import_quantity", "disputed_value", "event_id", "reporter_wl")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETECT_TIME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    EXPORT_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    IMPORT_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    EXPORT_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    IMPORT_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    DISPUTED_VALUE_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    exporter_wl: str
    importer_wl: str
    correlation_id: str
    reason: str
    detect_time: _timestamp_pb2.Timestamp
    category: str
    export_amount: str
    import_amount: str
    export_quantity: int
    import_quantity: int
    disputed_value: str
    event_id: str
    reporter_wl: str
    def __init__(self, order_id: _Optional[str] = ..., exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., correlation_id: _Optional[str] = ..., reason: _Optional[str] = ..., detect_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., category: _Optional[str] = ..., export_amount: _Optional[str] = ..., import_amount: _Optional[str] = ..., export_quantity: _Optional[int] = ..., import_quantity: _Optional[int] = ..., disputed_value: _Optional[str] = ..., event_id: _Optional[str] = ..., reporter_wl: _Optional[str] = ...) -> None: ...

class SloFigure(_message.Message):
    __slots__ = ("name", "scope", "value", "target", "unit", "breach", "samples")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    BREACH_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    name: str
    scope: str
    value: str
    target: str
    unit: str
    breach: bool
    samples: int
    def __init__(self, name: _Optional[str] = ..., scope: _Optional[str] = ..., value: _Optional[str] = ..., target: _Optional[str] = ..., unit: _Optional[str] = ..., breach: _Optional[bool] = ..., samples: _Optional[int] = ...) -> None: ...

class CatalogSyncLag(_message.Message):
    __slots__ = ("importer_wl", "exporter_wl", "level_seconds", "seconds", "measure_time")
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    LEVEL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    MEASURE_TIME_FIELD_NUMBER: _ClassVar[int]
    importer_wl: str
    exporter_wl: str
    level_seconds: float
    seconds: float
    measure_time: _timestamp_pb2.Timestamp
    def __init__(self, importer_wl: _Optional[str] = ..., exporter_wl: _Optional[str] = ..., level_seconds: _Optional[float] = ..., seconds: _Optional[float] = ..., measure_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
