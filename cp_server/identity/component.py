"""The identity feature as a CP component: IdentityService (who may call it: ``cp_server/authz.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

from xporty.cp.v1 import identity_pb2, identity_service_pb2, identity_service_pb2_grpc
from xwl_runtime.component import Component

from .bootstrap import BootstrapTokens
from .registry import RegistryLookup
from .servicer import IdentityServicer

if TYPE_CHECKING:
    from cp_server.context import CpContext


class TokenKeys(Protocol):
    """The rotating JWT keys (``cp_server.trust.token_keys.TokenKeys``)."""

    def signing_key(self) -> ec.EllipticCurvePrivateKey: ...

    def published(self) -> list[identity_pb2.VerificationKey]: ...


SERVICE_NAME = identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name



def install(ctx: CpContext, *, token_keys: TokenKeys | None = None) -> Component:
    """Build IdentityService from the CP context (signing with ``token_keys``' current key when given)."""
    servicer = IdentityServicer(
        engine=ctx.engine,
        ca=ctx.ca,
        bootstrap=BootstrapTokens(ctx.engine, ctx.clock),
        registry=RegistryLookup(ctx.engine),
        audit=ctx.audit,
        clock=ctx.clock,
        jwt_key=ctx.jwt_key,
        cert_lifetime=ctx.settings.node_cert_lifetime,
        token_lifetime=ctx.settings.token_lifetime,
        signing_key=token_keys.signing_key if token_keys is not None else None,
        published_keys=token_keys.published if token_keys is not None else None,
        max_identity_age=ctx.settings.max_identity_age,
    )

    def register(server: grpc.aio.Server) -> None:
        identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(servicer, server)

    return Component(name="identity", registrations=[register], service_names=[SERVICE_NAME])
