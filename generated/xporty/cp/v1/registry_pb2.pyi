import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WhiteLabel(_message.Message):
    __slots__ = ("wl_id", "name", "currency", "currency_decimals", "reference_rate", "trader_endpoint", "create_time", "update_time", "dns_names")
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_DECIMALS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_RATE_FIELD_NUMBER: _ClassVar[int]
    TRADER_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMES_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    name: str
    currency: str
    currency_decimals: int
    reference_rate: str
    trader_endpoint: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    dns_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, wl_id: _Optional[str] = ..., name: _Optional[str] = ..., currency: _Optional[str] = ..., currency_decimals: _Optional[int] = ..., reference_rate: _Optional[str] = ..., trader_endpoint: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dns_names: _Optional[_Iterable[str]] = ...) -> None: ...
