"""The trust feature as a CP part: the peer guard, the operator side (for AdminService) and the key-drop loop.

It has no service of its own: its RPCs are AdminService methods (operators only, audited) and its check runs in
the server pipeline (``CpPeerGuard``).
"""

from __future__ import annotations

from dataclasses import dataclass

from cp_server.context import CpContext
from cp_server.policy.hub import PolicyHub
from cp_server.store.changes import ChangeRunner
from xwl_runtime.component import Component

from .admin import TrustAdmin
from .guard import CpPeerGuard
from .imports import CertificateImports
from .revocations import Revocations
from .token_keys import TokenKeys


@dataclass(frozen=True)
class Trust:
    """Everything the composition root wires in."""

    admin: TrustAdmin
    guard: CpPeerGuard
    token_keys: TokenKeys
    component: Component
    """No service of its own; runs the loop that drops retired token keys."""


def build(ctx: CpContext, *, hub: PolicyHub, changes: ChangeRunner) -> Trust:
    """Build the trust parts on the CP's context, the policy hub (the installed world) and its change runner."""
    token_keys = TokenKeys(pki_dir=ctx.settings.pki_dir, initial=ctx.jwt_key, world=hub.world, changes=changes,
                           clock=ctx.clock, token_lifetime=ctx.settings.token_lifetime)
    admin = TrustAdmin(revocations=Revocations(changes),
                       imports=CertificateImports(ctx.engine, ctx.ca.certificate, ctx.audit),
                       token_keys=token_keys, clock=ctx.clock)
    return Trust(admin=admin, guard=CpPeerGuard(hub, ctx.engine), token_keys=token_keys,
                 component=Component(name="trust", loops=[token_keys.run]))
