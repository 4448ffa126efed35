from xporty.common.v1 import money_pb2 as _money_pb2
from xporty.trader.v1 import offer_pb2 as _offer_pb2
from xporty.trader.v1 import order_pb2 as _order_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListOffersRequest(_message.Message):
    __slots__ = ("cursor", "page_size")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    page_size: int
    def __init__(self, cursor: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListOffersResponse(_message.Message):
    __slots__ = ("changes", "next_cursor", "has_more")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[_offer_pb2.OfferChange]
    next_cursor: str
    has_more: bool
    def __init__(self, changes: _Optional[_Iterable[_Union[_offer_pb2.OfferChange, _Mapping]]] = ..., next_cursor: _Optional[str] = ..., has_more: _Optional[bool] = ...) -> None: ...

class WatchOffersRequest(_message.Message):
    __slots__ = ("cursor",)
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    def __init__(self, cursor: _Optional[str] = ...) -> None: ...

class WatchOffersResponse(_message.Message):
    __slots__ = ("latest_sequence", "heartbeat")
    LATEST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    latest_sequence: int
    heartbeat: bool
    def __init__(self, latest_sequence: _Optional[int] = ..., heartbeat: _Optional[bool] = ...) -> None: ...

class PlaceOrderRequest(_message.Message):
    __slots__ = ("idempotency_key", "offer_id", "quantity", "expected_unit_price", "expected_fx_version", "buyer_cohort_hash")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FX_VERSION_FIELD_NUMBER: _ClassVar[int]
    BUYER_COHORT_HASH_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    offer_id: str
    quantity: int
    expected_unit_price: _money_pb2.Money
    expected_fx_version: int
    buyer_cohort_hash: str
    def __init__(self, idempotency_key: _Optional[str] = ..., offer_id: _Optional[str] = ..., quantity: _Optional[int] = ..., expected_unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., expected_fx_version: _Optional[int] = ..., buyer_cohort_hash: _Optional[str] = ...) -> None: ...

class PlaceOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _order_pb2.Order
    def __init__(self, order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("idempotency_key", "order_id", "reason")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    order_id: str
    reason: str
    def __init__(self, idempotency_key: _Optional[str] = ..., order_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _order_pb2.Order
    def __init__(self, order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id", "idempotency_key")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    idempotency_key: str
    def __init__(self, order_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _order_pb2.Order
    def __init__(self, order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ...) -> None: ...

class GetTraderContactRequest(_message.Message):
    __slots__ = ("handle", "purpose")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    handle: str
    purpose: str
    def __init__(self, handle: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class GetTraderContactResponse(_message.Message):
    __slots__ = ("contact",)
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    contact: _offer_pb2.TraderContact
    def __init__(self, contact: _Optional[_Union[_offer_pb2.TraderContact, _Mapping]] = ...) -> None: ...
