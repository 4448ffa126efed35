import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xporty.cp.v1 import identity_pb2 as _identity_pb2
from xporty.cp.v1 import audit_pb2 as _audit_pb2
from xporty.cp.v1 import policy_pb2 as _policy_pb2
from xporty.cp.v1 import registry_pb2 as _registry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditCheckpointResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIT_CHECKPOINT_RESULT_UNSPECIFIED: _ClassVar[AuditCheckpointResult]
    AUDIT_CHECKPOINT_RESULT_MATCH: _ClassVar[AuditCheckpointResult]
    AUDIT_CHECKPOINT_RESULT_TRUNCATED: _ClassVar[AuditCheckpointResult]
    AUDIT_CHECKPOINT_RESULT_REWRITTEN: _ClassVar[AuditCheckpointResult]
AUDIT_CHECKPOINT_RESULT_UNSPECIFIED: AuditCheckpointResult
AUDIT_CHECKPOINT_RESULT_MATCH: AuditCheckpointResult
AUDIT_CHECKPOINT_RESULT_TRUNCATED: AuditCheckpointResult
AUDIT_CHECKPOINT_RESULT_REWRITTEN: AuditCheckpointResult

class RegisterWlRequest(_message.Message):
    __slots__ = ("white_label",)
    WHITE_LABEL_FIELD_NUMBER: _ClassVar[int]
    white_label: _registry_pb2.WhiteLabel
    def __init__(self, white_label: _Optional[_Union[_registry_pb2.WhiteLabel, _Mapping]] = ...) -> None: ...

class RegisterWlResponse(_message.Message):
    __slots__ = ("white_label", "version")
    WHITE_LABEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    white_label: _registry_pb2.WhiteLabel
    version: int
    def __init__(self, white_label: _Optional[_Union[_registry_pb2.WhiteLabel, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class UpdateWlRequest(_message.Message):
    __slots__ = ("wl_id", "name", "reference_rate", "trader_endpoint", "dns_names")
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_RATE_FIELD_NUMBER: _ClassVar[int]
    TRADER_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMES_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    name: str
    reference_rate: str
    trader_endpoint: str
    dns_names: DnsNames
    def __init__(self, wl_id: _Optional[str] = ..., name: _Optional[str] = ..., reference_rate: _Optional[str] = ..., trader_endpoint: _Optional[str] = ..., dns_names: _Optional[_Union[DnsNames, _Mapping]] = ...) -> None: ...

class DnsNames(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateWlResponse(_message.Message):
    __slots__ = ("white_label", "version")
    WHITE_LABEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    white_label: _registry_pb2.WhiteLabel
    version: int
    def __init__(self, white_label: _Optional[_Union[_registry_pb2.WhiteLabel, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class ListWlsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWlsResponse(_message.Message):
    __slots__ = ("white_labels",)
    WHITE_LABELS_FIELD_NUMBER: _ClassVar[int]
    white_labels: _containers.RepeatedCompositeFieldContainer[_registry_pb2.WhiteLabel]
    def __init__(self, white_labels: _Optional[_Iterable[_Union[_registry_pb2.WhiteLabel, _Mapping]]] = ...) -> None: ...

class UpdatePairPolicyRequest(_message.Message):
    __slots__ = ("wl_a", "wl_b", "status", "imbalance_limit", "fx_rate", "force_fx", "imports_frozen", "reason")
    WL_A_FIELD_NUMBER: _ClassVar[int]
    WL_B_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IMBALANCE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FX_RATE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FX_FIELD_NUMBER: _ClassVar[int]
    IMPORTS_FROZEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    wl_a: str
    wl_b: str
    status: _policy_pb2.RelationshipStatus
    imbalance_limit: str
    fx_rate: str
    force_fx: bool
    imports_frozen: bool
    reason: str
    def __init__(self, wl_a: _Optional[str] = ..., wl_b: _Optional[str] = ..., status: _Optional[_Union[_policy_pb2.RelationshipStatus, str]] = ..., imbalance_limit: _Optional[str] = ..., fx_rate: _Optional[str] = ..., force_fx: _Optional[bool] = ..., imports_frozen: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdatePairPolicyResponse(_message.Message):
    __slots__ = ("policy", "version")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    policy: _policy_pb2.PairPolicy
    version: int
    def __init__(self, policy: _Optional[_Union[_policy_pb2.PairPolicy, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class UpdateDirectionPolicyRequest(_message.Message):
    __slots__ = ("exporter_wl", "importer_wl", "import_enabled", "destination_visible", "export_delay", "reason")
    EXPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORTER_WL_FIELD_NUMBER: _ClassVar[int]
    IMPORT_ENABLED_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_VISIBLE_FIELD_NUMBER: _ClassVar[int]
    EXPORT_DELAY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    exporter_wl: str
    importer_wl: str
    import_enabled: bool
    destination_visible: bool
    export_delay: _duration_pb2.Duration
    reason: str
    def __init__(self, exporter_wl: _Optional[str] = ..., importer_wl: _Optional[str] = ..., import_enabled: _Optional[bool] = ..., destination_visible: _Optional[bool] = ..., export_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdateDirectionPolicyResponse(_message.Message):
    __slots__ = ("policy", "version")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    policy: _policy_pb2.PairPolicy
    version: int
    def __init__(self, policy: _Optional[_Union[_policy_pb2.PairPolicy, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class GetPairPolicyRequest(_message.Message):
    __slots__ = ("wl_a", "wl_b")
    WL_A_FIELD_NUMBER: _ClassVar[int]
    WL_B_FIELD_NUMBER: _ClassVar[int]
    wl_a: str
    wl_b: str
    def __init__(self, wl_a: _Optional[str] = ..., wl_b: _Optional[str] = ...) -> None: ...

class GetPairPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: _policy_pb2.PairPolicy
    def __init__(self, policy: _Optional[_Union[_policy_pb2.PairPolicy, _Mapping]] = ...) -> None: ...

class ListPairPoliciesRequest(_message.Message):
    __slots__ = ("wl_id",)
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    def __init__(self, wl_id: _Optional[str] = ...) -> None: ...

class ListPairPoliciesResponse(_message.Message):
    __slots__ = ("policies", "version")
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[_policy_pb2.PairPolicy]
    version: int
    def __init__(self, policies: _Optional[_Iterable[_Union[_policy_pb2.PairPolicy, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("wl_id", "applied_version", "current_version", "drifted", "drift", "report_time", "rejected_version", "last_error", "software_version", "contract_version", "features", "unsupported")
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    APPLIED_VERSION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    DRIFTED_FIELD_NUMBER: _ClassVar[int]
    DRIFT_FIELD_NUMBER: _ClassVar[int]
    REPORT_TIME_FIELD_NUMBER: _ClassVar[int]
    REJECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    UNSUPPORTED_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    applied_version: int
    current_version: int
    drifted: bool
    drift: _duration_pb2.Duration
    report_time: _timestamp_pb2.Timestamp
    rejected_version: int
    last_error: str
    software_version: str
    contract_version: str
    features: _containers.RepeatedScalarFieldContainer[str]
    unsupported: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, wl_id: _Optional[str] = ..., applied_version: _Optional[int] = ..., current_version: _Optional[int] = ..., drifted: _Optional[bool] = ..., drift: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., report_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rejected_version: _Optional[int] = ..., last_error: _Optional[str] = ..., software_version: _Optional[str] = ..., contract_version: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ..., unsupported: _Optional[_Iterable[str]] = ...) -> None: ...

class ListNodeStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNodeStatusResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ...) -> None: ...

class CreateBootstrapTokenRequest(_message.Message):
    __slots__ = ("wl_id", "ttl")
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    ttl: _duration_pb2.Duration
    def __init__(self, wl_id: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateBootstrapTokenResponse(_message.Message):
    __slots__ = ("token", "expire_time")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    token: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("sequence", "create_time", "actor", "correlation_id", "action", "subject", "before_json", "after_json", "hash", "signature")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_JSON_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    create_time: _timestamp_pb2.Timestamp
    actor: str
    correlation_id: str
    action: str
    subject: str
    before_json: str
    after_json: str
    hash: str
    signature: str
    def __init__(self, sequence: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., correlation_id: _Optional[str] = ..., action: _Optional[str] = ..., subject: _Optional[str] = ..., before_json: _Optional[str] = ..., after_json: _Optional[str] = ..., hash: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class ListAuditRecordsRequest(_message.Message):
    __slots__ = ("after_sequence", "page_size")
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    page_size: int
    def __init__(self, after_sequence: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListAuditRecordsResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ...) -> None: ...

class VerifyAuditLogRequest(_message.Message):
    __slots__ = ("checkpoints",)
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[_audit_pb2.AuditCheckpoint]
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[_audit_pb2.AuditCheckpoint, _Mapping]]] = ...) -> None: ...

class AuditCheckpointCheck(_message.Message):
    __slots__ = ("sequence", "result", "checkpoint_hash", "stored_hash", "stored_sequence")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_HASH_FIELD_NUMBER: _ClassVar[int]
    STORED_HASH_FIELD_NUMBER: _ClassVar[int]
    STORED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    result: AuditCheckpointResult
    checkpoint_hash: str
    stored_hash: str
    stored_sequence: int
    def __init__(self, sequence: _Optional[int] = ..., result: _Optional[_Union[AuditCheckpointResult, str]] = ..., checkpoint_hash: _Optional[str] = ..., stored_hash: _Optional[str] = ..., stored_sequence: _Optional[int] = ...) -> None: ...

class VerifyAuditLogResponse(_message.Message):
    __slots__ = ("ok", "records", "first_bad_sequence", "checkpoint_checks")
    OK_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_CHECKS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    records: int
    first_bad_sequence: int
    checkpoint_checks: _containers.RepeatedCompositeFieldContainer[AuditCheckpointCheck]
    def __init__(self, ok: _Optional[bool] = ..., records: _Optional[int] = ..., first_bad_sequence: _Optional[int] = ..., checkpoint_checks: _Optional[_Iterable[_Union[AuditCheckpointCheck, _Mapping]]] = ...) -> None: ...

class GetAuditCheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAuditCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: _audit_pb2.AuditCheckpoint
    def __init__(self, checkpoint: _Optional[_Union[_audit_pb2.AuditCheckpoint, _Mapping]] = ...) -> None: ...

class RevokeCertificateRequest(_message.Message):
    __slots__ = ("serial", "wl_id", "reason")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    serial: str
    wl_id: str
    reason: str
    def __init__(self, serial: _Optional[str] = ..., wl_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeCertificateResponse(_message.Message):
    __slots__ = ("revoked", "version")
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    revoked: _containers.RepeatedCompositeFieldContainer[_policy_pb2.RevokedCertificate]
    version: int
    def __init__(self, revoked: _Optional[_Iterable[_Union[_policy_pb2.RevokedCertificate, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class ListRevokedCertificatesRequest(_message.Message):
    __slots__ = ("wl_id",)
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    wl_id: str
    def __init__(self, wl_id: _Optional[str] = ...) -> None: ...

class ListRevokedCertificatesResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: _containers.RepeatedCompositeFieldContainer[_policy_pb2.RevokedCertificate]
    def __init__(self, revoked: _Optional[_Iterable[_Union[_policy_pb2.RevokedCertificate, _Mapping]]] = ...) -> None: ...

class ImportCertificateRequest(_message.Message):
    __slots__ = ("certificate_pem",)
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: str
    def __init__(self, certificate_pem: _Optional[str] = ...) -> None: ...

class ImportCertificateResponse(_message.Message):
    __slots__ = ("serial", "wl_id", "expire_time", "imported")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    WL_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_FIELD_NUMBER: _ClassVar[int]
    serial: str
    wl_id: str
    expire_time: _timestamp_pb2.Timestamp
    imported: bool
    def __init__(self, serial: _Optional[str] = ..., wl_id: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., imported: _Optional[bool] = ...) -> None: ...

class RotateTokenKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateTokenKeyResponse(_message.Message):
    __slots__ = ("current", "previous_kid", "previous_retire_time", "version")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_KID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_RETIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    current: _identity_pb2.VerificationKey
    previous_kid: str
    previous_retire_time: _timestamp_pb2.Timestamp
    version: int
    def __init__(self, current: _Optional[_Union[_identity_pb2.VerificationKey, _Mapping]] = ..., previous_kid: _Optional[str] = ..., previous_retire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...
