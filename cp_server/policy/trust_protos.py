"""Trust records to their proto messages (policy views and AdminService)."""

from __future__ import annotations

from cp_server.policy.protos import timestamp
from cp_server.store.trust_records import RevokedRecord, TokenKeyRecord
from xporty.cp.v1 import identity_pb2, policy_pb2
from xwl_runtime.tokens import ALGORITHM


def verification_key(record: TokenKeyRecord) -> identity_pb2.VerificationKey:
    return identity_pb2.VerificationKey(kid=record.kid, algorithm=ALGORITHM, public_key_pem=record.public_key_pem)


def revoked_certificate(record: RevokedRecord) -> policy_pb2.RevokedCertificate:
    return policy_pb2.RevokedCertificate(
        serial=record.serial, wl_id=record.wl_id, revoke_time=timestamp(record.revoke_time), reason=record.reason,
    )
