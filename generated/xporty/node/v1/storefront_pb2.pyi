import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xporty.common.v1 import money_pb2 as _money_pb2
from xporty.cp.v1 import policy_pb2 as _policy_pb2
from xporty.trader.v1 import offer_pb2 as _offer_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckoutStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECKOUT_STATUS_UNSPECIFIED: _ClassVar[CheckoutStatus]
    CHECKOUT_STATUS_PENDING: _ClassVar[CheckoutStatus]
    CHECKOUT_STATUS_COMPLETED: _ClassVar[CheckoutStatus]
    CHECKOUT_STATUS_FAILED: _ClassVar[CheckoutStatus]
    CHECKOUT_STATUS_CANCELLED: _ClassVar[CheckoutStatus]

class PairSignalKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAIR_SIGNAL_KIND_UNSPECIFIED: _ClassVar[PairSignalKind]
    PAIR_SIGNAL_KIND_DIRECTION_DISABLED: _ClassVar[PairSignalKind]
    PAIR_SIGNAL_KIND_DIRECTION_ENABLED: _ClassVar[PairSignalKind]
    PAIR_SIGNAL_KIND_PAIR_STATUS: _ClassVar[PairSignalKind]
CHECKOUT_STATUS_UNSPECIFIED: CheckoutStatus
CHECKOUT_STATUS_PENDING: CheckoutStatus
CHECKOUT_STATUS_COMPLETED: CheckoutStatus
CHECKOUT_STATUS_FAILED: CheckoutStatus
CHECKOUT_STATUS_CANCELLED: CheckoutStatus
PAIR_SIGNAL_KIND_UNSPECIFIED: PairSignalKind
PAIR_SIGNAL_KIND_DIRECTION_DISABLED: PairSignalKind
PAIR_SIGNAL_KIND_DIRECTION_ENABLED: PairSignalKind
PAIR_SIGNAL_KIND_PAIR_STATUS: PairSignalKind

class ImportedOffer(_message.Message):
    __slots__ = ("imported_offer_id", "source_wl", "source_offer_id", "title", "description", "category", "source_price", "price", "fx_rate", "fx_version", "stock", "image_urls", "manager", "available", "sync_time")
    IMPORTED_OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_WL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PRICE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    FX_RATE_FIELD_NUMBER: _ClassVar[int]
    FX_VERSION_FIELD_NUMBER: _ClassVar[int]
    STOCK_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URLS_FIELD_NUMBER: _ClassVar[int]
    MANAGER_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    SYNC_TIME_FIELD_NUMBER: _ClassVar[int]
    imported_offer_id: str
    source_wl: str
    source_offer_id: str
    title: str
    description: str
    category: str
    source_price: _money_pb2.Money
    price: _money_pb2.Money
    fx_rate: str
    fx_version: int
    stock: int
    image_urls: _containers.RepeatedScalarFieldContainer[str]
    manager: _offer_pb2.TraderContact
    available: bool
    sync_time: _timestamp_pb2.Timestamp
    def __init__(self, imported_offer_id: _Optional[str] = ..., source_wl: _Optional[str] = ..., source_offer_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., category: _Optional[str] = ..., source_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., fx_rate: _Optional[str] = ..., fx_version: _Optional[int] = ..., stock: _Optional[int] = ..., image_urls: _Optional[_Iterable[str]] = ..., manager: _Optional[_Union[_offer_pb2.TraderContact, _Mapping]] = ..., available: _Optional[bool] = ..., sync_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Checkout(_message.Message):
    __slots__ = ("checkout_id", "idempotency_key", "imported_offer_id", "quantity", "buyer_reference", "total", "status", "reason", "order_id", "correlation_id", "create_time", "update_time")
    CHECKOUT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BUYER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    checkout_id: str
    idempotency_key: str
    imported_offer_id: str
    quantity: int
    buyer_reference: str
    total: _money_pb2.Money
    status: CheckoutStatus
    reason: str
    order_id: str
    correlation_id: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, checkout_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., imported_offer_id: _Optional[str] = ..., quantity: _Optional[int] = ..., buyer_reference: _Optional[str] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., status: _Optional[_Union[CheckoutStatus, str]] = ..., reason: _Optional[str] = ..., order_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NodeState(_message.Message):
    __slots__ = ("wl_id", "policy_version", "confirm_time", "stream_connected", "stale")
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_TIME_FIELD_NUMBER: _ClassVar[int]
    STREAM_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    policy_version: int
    confirm_time: _timestamp_pb2.Timestamp
    stream_connected: bool
    stale: bool
    def __init__(self, wl_id: _Optional[str] = ..., policy_version: _Optional[int] = ..., confirm_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stream_connected: _Optional[bool] = ..., stale: _Optional[bool] = ...) -> None: ...

class PairsUpdate(_message.Message):
    __slots__ = ("policy_version", "pairs")
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    policy_version: int
    pairs: _containers.RepeatedCompositeFieldContainer[_policy_pb2.PairPolicy]
    def __init__(self, policy_version: _Optional[int] = ..., pairs: _Optional[_Iterable[_Union[_policy_pb2.PairPolicy, _Mapping]]] = ...) -> None: ...

class PairSignal(_message.Message):
    __slots__ = ("kind", "signal_id", "sequence", "exporter_wl", "importer_wl", "status", "reason", "correlation_id", "effective_time")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    kind: PairSignalKind
    signal_id: str
    sequence: int
    exporter_wl: str
    importer_wl: str
    status: _policy_pb2.RelationshipStatus
    reason: str
    correlation_id: str
    effective_time: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[PairSignalKind, str]] = ..., signal_id: _Optional[str] = ..., sequence: _Optional[int] = ..., exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., status: _Optional[_Union[_policy_pb2.RelationshipStatus, str]] = ..., reason: _Optional[str] = ..., correlation_id: _Optional[str] = ..., effective_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
