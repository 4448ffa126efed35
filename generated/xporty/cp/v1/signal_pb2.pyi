import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xporty.common.v1 import money_pb2 as _money_pb2
from xporty.cp.v1 import policy_pb2 as _policy_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SignalKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNAL_KIND_UNSPECIFIED: _ClassVar[SignalKind]
    SIGNAL_KIND_DISABLE: _ClassVar[SignalKind]
    SIGNAL_KIND_ENABLE: _ClassVar[SignalKind]
    SIGNAL_KIND_PAIR_STATUS: _ClassVar[SignalKind]
    SIGNAL_KIND_ALERT: _ClassVar[SignalKind]
    SIGNAL_KIND_ALERT_CLEARED: _ClassVar[SignalKind]

class SignalSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNAL_SOURCE_UNSPECIFIED: _ClassVar[SignalSource]
    SIGNAL_SOURCE_AUTOMATIC: _ClassVar[SignalSource]
    SIGNAL_SOURCE_OPERATOR: _ClassVar[SignalSource]
    SIGNAL_SOURCE_POLICY: _ClassVar[SignalSource]
SIGNAL_KIND_UNSPECIFIED: SignalKind
SIGNAL_KIND_DISABLE: SignalKind
SIGNAL_KIND_ENABLE: SignalKind
SIGNAL_KIND_PAIR_STATUS: SignalKind
SIGNAL_KIND_ALERT: SignalKind
SIGNAL_KIND_ALERT_CLEARED: SignalKind
SIGNAL_SOURCE_UNSPECIFIED: SignalSource
SIGNAL_SOURCE_AUTOMATIC: SignalSource
SIGNAL_SOURCE_OPERATOR: SignalSource
SIGNAL_SOURCE_POLICY: SignalSource

class CompensationOffer(_message.Message):
    __slots__ = ("offer_id", "reference_value", "title", "unit_reference_value", "available_stock", "unit_price", "exporter_wl", "importer_wl", "cover_quantity", "digest_time")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_VALUE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    UNIT_REFERENCE_VALUE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_STOCK_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    COVER_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    DIGEST_TIME_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    reference_value: str
    title: str
    unit_reference_value: str
    available_stock: int
    unit_price: _money_pb2.Money
    exporter_wl: str
    importer_wl: str
    cover_quantity: int
    digest_time: _timestamp_pb2.Timestamp
    def __init__(self, offer_id: _Optional[str] = ..., reference_value: _Optional[str] = ..., title: _Optional[str] = ..., unit_reference_value: _Optional[str] = ..., available_stock: _Optional[int] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., cover_quantity: _Optional[int] = ..., digest_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompensationPlan(_message.Message):
    __slots__ = ("required_reference_value", "offers")
    REQUIRED_REFERENCE_VALUE_FIELD_NUMBER: _ClassVar[int]
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    required_reference_value: str
    offers: _containers.RepeatedCompositeFieldContainer[CompensationOffer]
    def __init__(self, required_reference_value: _Optional[str] = ..., offers: _Optional[_Iterable[_Union[CompensationOffer, _Mapping]]] = ...) -> None: ...

class Signal(_message.Message):
    __slots__ = ("signal_id", "sequence", "kind", "source", "exporter_wl", "importer_wl", "reason", "correlation_id", "issue_time", "plan", "pair_status", "policy_version")
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TIME_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    PAIR_STATUS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    signal_id: str
    sequence: int
    kind: SignalKind
    source: SignalSource
    exporter_wl: str
    importer_wl: str
    reason: str
    correlation_id: str
    issue_time: _timestamp_pb2.Timestamp
    plan: CompensationPlan
    pair_status: _policy_pb2.RelationshipStatus
    policy_version: int
    def __init__(self, signal_id: _Optional[str] = ..., sequence: _Optional[int] = ..., kind: _Optional[_Union[SignalKind, str]] = ..., source: _Optional[_Union[SignalSource, str]] = ..., exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., reason: _Optional[str] = ..., correlation_id: _Optional[str] = ..., issue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan: _Optional[_Union[CompensationPlan, _Mapping]] = ..., pair_status: _Optional[_Union[_policy_pb2.RelationshipStatus, str]] = ..., policy_version: _Optional[int] = ...) -> None: ...
