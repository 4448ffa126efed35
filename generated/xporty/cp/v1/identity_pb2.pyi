import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VerificationKey(_message.Message):
    __slots__ = ("kid", "algorithm", "public_key_pem")
    KID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    kid: str
    algorithm: str
    public_key_pem: str
    def __init__(self, kid: _Optional[str] = ..., algorithm: _Optional[str] = ..., public_key_pem: _Optional[str] = ...) -> None: ...

class PeerToken(_message.Message):
    __slots__ = ("audience_wl", "token", "expire_time")
    AUDIENCE_WL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    audience_wl: str
    token: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, audience_wl: _Optional[str] = ..., token: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
