"""The operator RPCs of the trust feature, as AdminService delegates them (proto <-> domain, nothing more)."""

from __future__ import annotations

from dataclasses import dataclass

from cp_server.policy import trust_protos as protos
from cp_server.policy.protos import timestamp
from xporty.cp.v1 import admin_service_pb2 as pb
from xwl_runtime.clock import Clock

from .imports import CertificateImports
from .revocations import Revocations
from .token_keys import TokenKeys


@dataclass(frozen=True)
class TrustAdmin:
    """Revocation, import and key rotation for AdminService; ``actor`` is always the caller's SPIFFE id."""

    revocations: Revocations
    imports: CertificateImports
    token_keys: TokenKeys
    clock: Clock

    async def revoke(self, actor: str, request: pb.RevokeCertificateRequest) -> pb.RevokeCertificateResponse:
        done = await self.revocations.revoke(actor, serial_hex=request.serial, wl_id=request.wl_id,
                                             reason=request.reason)
        return pb.RevokeCertificateResponse(revoked=[protos.revoked_certificate(r) for r in done.value],
                                            version=done.version if done.changed else 0)

    async def list_revoked(self, request: pb.ListRevokedCertificatesRequest) -> pb.ListRevokedCertificatesResponse:
        found = await self.revocations.list(self.clock.now(), wl_id=request.wl_id)
        return pb.ListRevokedCertificatesResponse(revoked=[protos.revoked_certificate(r) for r in found])

    async def import_certificate(
        self, actor: str, request: pb.ImportCertificateRequest
    ) -> pb.ImportCertificateResponse:
        done = await self.imports.import_pem(request.certificate_pem, actor=actor, now=self.clock.now())
        return pb.ImportCertificateResponse(serial=done.serial, wl_id=done.wl_id,
                                            expire_time=timestamp(done.not_after), imported=done.imported)

    async def rotate_token_key(self, actor: str) -> pb.RotateTokenKeyResponse:
        done = await self.token_keys.rotate(actor)
        return pb.RotateTokenKeyResponse(current=done.value.current, previous_kid=done.value.previous_kid,
                                         previous_retire_time=timestamp(done.value.previous_retire_at),
                                         version=done.version)
