"""The node's peer guard: refuse a caller whose certificate the CP revoked, as the applied policy view says.

Reads only the current view (an immutable snapshot replaced by the policy agent): the revoked serials are
computed once per view and cached beside it, so a check is one attribute read and one set lookup, with no lock.
Every applied view also swaps the ``changed()`` event, which ends open streams (WatchOffers) of a peer revoked by
that view (``xwl_runtime.peer_guard.StreamGuard``).
"""

from __future__ import annotations

import asyncio

from xporty.cp.v1 import policy_pb2
from xwl_runtime.peer_guard import PeerCertificate, revoked_error

from .state import PolicyState


class NodePeerGuard:
    """Refuses certificates listed in the applied view's ``revoked_certificates``."""

    def __init__(self, state: PolicyState) -> None:
        self._state = state
        self._cached: tuple[policy_pb2.PolicyView | None, frozenset[str]] = (None, frozenset())
        self._changed = asyncio.Event()
        state.add_listener(self._on_apply)

    def _revoked(self) -> frozenset[str]:
        view = self._state.current()
        cached = self._cached
        if cached[0] is view:
            return cached[1]
        serials = frozenset(r.serial for r in view.revoked_certificates) if view is not None else frozenset()
        self._cached = (view, serials)
        return serials

    async def _on_apply(self, view: policy_pb2.PolicyView) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def check(self, peer: PeerCertificate) -> None:
        if peer.serial in self._revoked():
            raise revoked_error()

    def is_revoked(self, peer: PeerCertificate) -> bool:
        return peer.serial in self._revoked()

    def changed(self) -> asyncio.Event:
        return self._changed
