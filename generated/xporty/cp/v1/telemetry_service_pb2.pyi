import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xporty.cp.v1 import operations_pb2 as _operations_pb2
from xporty.cp.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PublishEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.SignedEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_telemetry_pb2.SignedEvent, _Mapping]]] = ...) -> None: ...

class RejectedEvent(_message.Message):
    __slots__ = ("index", "event_id", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    event_id: str
    reason: str
    def __init__(self, index: _Optional[int] = ..., event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PublishEventsResponse(_message.Message):
    __slots__ = ("accepted", "duplicates", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedEvent]
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedEvent, _Mapping]]] = ...) -> None: ...

class ReportOffersRequest(_message.Message):
    __slots__ = ("exporter_wl", "digests")
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    exporter_wl: str
    digests: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.OfferDigest]
    def __init__(self, exporter_wl: _Optional[str] = ..., digests: _Optional[_Iterable[_Union[_telemetry_pb2.OfferDigest, _Mapping]]] = ...) -> None: ...

class ReportOffersResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: int
    def __init__(self, stored: _Optional[int] = ...) -> None: ...

class ReportOperationsRequest(_message.Message):
    __slots__ = ("window_start", "window_end", "peers", "transitions", "sync_lag_complete", "signed")
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    SYNC_LAG_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    peers: _containers.RepeatedCompositeFieldContainer[_operations_pb2.PeerOperations]
    transitions: _containers.RepeatedCompositeFieldContainer[_operations_pb2.BreakerTransition]
    sync_lag_complete: bool
    signed: SignedOperationsReport
    def __init__(self, window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., peers: _Optional[_Iterable[_Union[_operations_pb2.PeerOperations, _Mapping]]] = ..., transitions: _Optional[_Iterable[_Union[_operations_pb2.BreakerTransition, _Mapping]]] = ..., sync_lag_complete: _Optional[bool] = ..., signed: _Optional[_Union[SignedOperationsReport, _Mapping]] = ...) -> None: ...

class SignedOperationsReport(_message.Message):
    __slots__ = ("payload", "signature", "signer_certificate_sha256")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNER_CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    signature: bytes
    signer_certificate_sha256: str
    def __init__(self, payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., signer_certificate_sha256: _Optional[str] = ...) -> None: ...

class ReportOperationsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
