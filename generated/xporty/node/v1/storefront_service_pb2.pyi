import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xporty.cp.v1 import audit_pb2 as _audit_pb2
from xporty.node.v1 import storefront_pb2 as _storefront_pb2
from xporty.trader.v1 import offer_pb2 as _offer_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PublishOfferRequest(_message.Message):
    __slots__ = ("offer",)
    OFFER_FIELD_NUMBER: _ClassVar[int]
    offer: _offer_pb2.Offer
    def __init__(self, offer: _Optional[_Union[_offer_pb2.Offer, _Mapping]] = ...) -> None: ...

class PublishOfferResponse(_message.Message):
    __slots__ = ("offer",)
    OFFER_FIELD_NUMBER: _ClassVar[int]
    offer: _offer_pb2.Offer
    def __init__(self, offer: _Optional[_Union[_offer_pb2.Offer, _Mapping]] = ...) -> None: ...

class UpdateOfferRequest(_message.Message):
    __slots__ = ("offer",)
    OFFER_FIELD_NUMBER: _ClassVar[int]
    offer: _offer_pb2.Offer
    def __init__(self, offer: _Optional[_Union[_offer_pb2.Offer, _Mapping]] = ...) -> None: ...

class UpdateOfferResponse(_message.Message):
    __slots__ = ("offer",)
    OFFER_FIELD_NUMBER: _ClassVar[int]
    offer: _offer_pb2.Offer
    def __init__(self, offer: _Optional[_Union[_offer_pb2.Offer, _Mapping]] = ...) -> None: ...

class WithdrawOfferRequest(_message.Message):
    __slots__ = ("offer_id",)
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    def __init__(self, offer_id: _Optional[str] = ...) -> None: ...

class WithdrawOfferResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListImportedOffersRequest(_message.Message):
    __slots__ = ("source_wl", "category", "text", "page_size", "page_token")
    SOURCE_WL_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    source_wl: str
    category: str
    text: str
    page_size: int
    page_token: str
    def __init__(self, source_wl: _Optional[str] = ..., category: _Optional[str] = ..., text: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListImportedOffersResponse(_message.Message):
    __slots__ = ("offers", "next_page_token")
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    offers: _containers.RepeatedCompositeFieldContainer[_storefront_pb2.ImportedOffer]
    next_page_token: str
    def __init__(self, offers: _Optional[_Iterable[_Union[_storefront_pb2.ImportedOffer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetImportedOfferRequest(_message.Message):
    __slots__ = ("imported_offer_id",)
    IMPORTED_OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    imported_offer_id: str
    def __init__(self, imported_offer_id: _Optional[str] = ...) -> None: ...

class GetImportedOfferResponse(_message.Message):
    __slots__ = ("offer",)
    OFFER_FIELD_NUMBER: _ClassVar[int]
    offer: _storefront_pb2.ImportedOffer
    def __init__(self, offer: _Optional[_Union[_storefront_pb2.ImportedOffer, _Mapping]] = ...) -> None: ...

class CheckoutRequest(_message.Message):
    __slots__ = ("idempotency_key", "imported_offer_id", "quantity", "buyer_reference")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BUYER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    imported_offer_id: str
    quantity: int
    buyer_reference: str
    def __init__(self, idempotency_key: _Optional[str] = ..., imported_offer_id: _Optional[str] = ..., quantity: _Optional[int] = ..., buyer_reference: _Optional[str] = ...) -> None: ...

class CheckoutResponse(_message.Message):
    __slots__ = ("checkout",)
    CHECKOUT_FIELD_NUMBER: _ClassVar[int]
    checkout: _storefront_pb2.Checkout
    def __init__(self, checkout: _Optional[_Union[_storefront_pb2.Checkout, _Mapping]] = ...) -> None: ...

class GetCheckoutRequest(_message.Message):
    __slots__ = ("checkout_id",)
    CHECKOUT_ID_FIELD_NUMBER: _ClassVar[int]
    checkout_id: str
    def __init__(self, checkout_id: _Optional[str] = ...) -> None: ...

class GetCheckoutResponse(_message.Message):
    __slots__ = ("checkout",)
    CHECKOUT_FIELD_NUMBER: _ClassVar[int]
    checkout: _storefront_pb2.Checkout
    def __init__(self, checkout: _Optional[_Union[_storefront_pb2.Checkout, _Mapping]] = ...) -> None: ...

class GetNodeStateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetNodeStateResponse(_message.Message):
    __slots__ = ("state", "audit_checkpoint")
    STATE_FIELD_NUMBER: _ClassVar[int]
    AUDIT_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    state: _storefront_pb2.NodeState
    audit_checkpoint: _audit_pb2.AuditCheckpoint
    def __init__(self, state: _Optional[_Union[_storefront_pb2.NodeState, _Mapping]] = ..., audit_checkpoint: _Optional[_Union[_audit_pb2.AuditCheckpoint, _Mapping]] = ...) -> None: ...

class GetTraderContactRequest(_message.Message):
    __slots__ = ("imported_offer_id", "purpose")
    IMPORTED_OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    imported_offer_id: str
    purpose: str
    def __init__(self, imported_offer_id: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class GetTraderContactResponse(_message.Message):
    __slots__ = ("contact",)
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    contact: _offer_pb2.TraderContact
    def __init__(self, contact: _Optional[_Union[_offer_pb2.TraderContact, _Mapping]] = ...) -> None: ...

class WatchPairsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchPairsResponse(_message.Message):
    __slots__ = ("pairs", "signal")
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    pairs: _storefront_pb2.PairsUpdate
    signal: _storefront_pb2.PairSignal
    def __init__(self, pairs: _Optional[_Union[_storefront_pb2.PairsUpdate, _Mapping]] = ..., signal: _Optional[_Union[_storefront_pb2.PairSignal, _Mapping]] = ...) -> None: ...

class PairAlert(_message.Message):
    __slots__ = ("peer_wl", "open", "reason", "correlation_id", "signal_id", "issue_time", "effective_time")
    PEER_WL_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TIME_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    peer_wl: str
    open: bool
    reason: str
    correlation_id: str
    signal_id: str
    issue_time: _timestamp_pb2.Timestamp
    effective_time: _timestamp_pb2.Timestamp
    def __init__(self, peer_wl: _Optional[str] = ..., open: _Optional[bool] = ..., reason: _Optional[str] = ..., correlation_id: _Optional[str] = ..., signal_id: _Optional[str] = ..., issue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., effective_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchPairAlertsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchPairAlertsResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: PairAlert
    def __init__(self, alert: _Optional[_Union[PairAlert, _Mapping]] = ...) -> None: ...
