from xporty.node.v1 import feature_flag_pb2 as _feature_flag_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetFeatureFlagsRequest(_message.Message):
    __slots__ = ("names", "subject")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    subject: str
    def __init__(self, names: _Optional[_Iterable[str]] = ..., subject: _Optional[str] = ...) -> None: ...

class GetFeatureFlagsResponse(_message.Message):
    __slots__ = ("flags", "policy_version")
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    flags: _containers.RepeatedCompositeFieldContainer[_feature_flag_pb2.FlagValue]
    policy_version: int
    def __init__(self, flags: _Optional[_Iterable[_Union[_feature_flag_pb2.FlagValue, _Mapping]]] = ..., policy_version: _Optional[int] = ...) -> None: ...

class WatchFeatureFlagsRequest(_message.Message):
    __slots__ = ("names", "subject")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    subject: str
    def __init__(self, names: _Optional[_Iterable[str]] = ..., subject: _Optional[str] = ...) -> None: ...

class WatchFeatureFlagsResponse(_message.Message):
    __slots__ = ("flags", "policy_version")
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    flags: _containers.RepeatedCompositeFieldContainer[_feature_flag_pb2.FlagValue]
    policy_version: int
    def __init__(self, flags: _Optional[_Iterable[_Union[_feature_flag_pb2.FlagValue, _Mapping]]] = ..., policy_version: _Optional[int] = ...) -> None: ...
