import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xporty.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LedgerEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEDGER_EVENT_KIND_UNSPECIFIED: _ClassVar[LedgerEventKind]
    LEDGER_EVENT_KIND_EXPORT_CONFIRMED: _ClassVar[LedgerEventKind]
    LEDGER_EVENT_KIND_IMPORT_FINALIZED: _ClassVar[LedgerEventKind]
    LEDGER_EVENT_KIND_ORDER_CANCELLED: _ClassVar[LedgerEventKind]
    LEDGER_EVENT_KIND_COMPENSATION: _ClassVar[LedgerEventKind]
    LEDGER_EVENT_KIND_ENFORCEMENT_ACK: _ClassVar[LedgerEventKind]
LEDGER_EVENT_KIND_UNSPECIFIED: LedgerEventKind
LEDGER_EVENT_KIND_EXPORT_CONFIRMED: LedgerEventKind
LEDGER_EVENT_KIND_IMPORT_FINALIZED: LedgerEventKind
LEDGER_EVENT_KIND_ORDER_CANCELLED: LedgerEventKind
LEDGER_EVENT_KIND_COMPENSATION: LedgerEventKind
LEDGER_EVENT_KIND_ENFORCEMENT_ACK: LedgerEventKind

class LedgerEvent(_message.Message):
    __slots__ = ("event_id", "wl_id", "correlation_id", "kind", "order_id", "exporter_wl", "importer_wl", "amount", "occur_time", "sequence", "signal_id", "quantity")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    wl_id: str
    correlation_id: str
    kind: LedgerEventKind
    order_id: str
    exporter_wl: str
    importer_wl: str
    amount: _money_pb2.Money
    occur_time: _timestamp_pb2.Timestamp
    sequence: int
    signal_id: str
    quantity: int
    def __init__(self, event_id: _Optional[str] = ..., wl_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., kind: _Optional[_Union[LedgerEventKind, str]] = ..., order_id: _Optional[str] = ..., exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ..., signal_id: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class SignedEvent(_message.Message):
    __slots__ = ("payload", "signature", "signer_certificate_sha256")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNER_CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    signature: bytes
    signer_certificate_sha256: str
    def __init__(self, payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., signer_certificate_sha256: _Optional[str] = ...) -> None: ...

class DigestOffer(_message.Message):
    __slots__ = ("offer_id", "title", "unit_price", "available_stock")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_STOCK_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    title: str
    unit_price: _money_pb2.Money
    available_stock: int
    def __init__(self, offer_id: _Optional[str] = ..., title: _Optional[str] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., available_stock: _Optional[int] = ...) -> None: ...

class OfferDigest(_message.Message):
    __slots__ = ("destination_wl", "generate_time", "offers")
    DESTINATION_WL_FIELD_NUMBER: _ClassVar[int]
    GENERATE_TIME_FIELD_NUMBER: _ClassVar[int]
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    destination_wl: str
    generate_time: _timestamp_pb2.Timestamp
    offers: _containers.RepeatedCompositeFieldContainer[DigestOffer]
    def __init__(self, destination_wl: _Optional[str] = ..., generate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offers: _Optional[_Iterable[_Union[DigestOffer, _Mapping]]] = ...) -> None: ...
