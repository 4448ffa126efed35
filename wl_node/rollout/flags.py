"""Reading this WL's feature flags from the node's policy view, for its apps.

The rule (the same in every node and documented in ``docs/rollout.md``):

* a flag absent from the view is **unknown**: it reads off (``known=false``) — an app asking for a flag its WL does
  not have, or a node one release behind, behaves as "not enabled";
* a flag past its ``expire_time`` reads as its ``default_enabled`` (``expired=true``);
* a BOOLEAN flag reads as its value; a PERCENTAGE flag is on for a subject when the subject's bucket
  (``xwl_runtime.cohort.flag_bucket``) is below its share — deterministic, so a member sees the same answer on
  every call and every node of the WL; without a subject it reads off unless the share is 100%;
* a kind this node does not know (a newer CP) reads as the default.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

from wl_node.policy.state import PolicyState
from xporty.cp.v1 import policy_pb2, rollout_pb2
from xporty.node.v1 import feature_flag_pb2
from xwl_runtime.clock import Clock
from xwl_runtime.cohort import BASIS_POINTS, flag_bucket


def evaluate(flag: rollout_pb2.FeatureFlag | None, name: str, subject: str, now: dt.datetime
             ) -> feature_flag_pb2.FlagValue:
    """How ``name`` reads for ``subject`` at ``now`` (``flag`` None: unknown)."""
    if flag is None:
        return feature_flag_pb2.FlagValue(name=name, enabled=False, known=False)
    out = feature_flag_pb2.FlagValue(
        name=name, known=True, default_enabled=flag.default_enabled, owner=flag.owner,
        percent_basis_points=flag.percent_basis_points if flag.kind == rollout_pb2.FEATURE_FLAG_KIND_PERCENTAGE else 0)
    if flag.HasField("expire_time"):
        out.expire_time.CopyFrom(flag.expire_time)
        if now >= flag.expire_time.ToDatetime(tzinfo=dt.UTC):
            out.expired = True
            out.enabled = flag.default_enabled
            return out
    if flag.kind == rollout_pb2.FEATURE_FLAG_KIND_BOOLEAN:
        out.enabled = flag.enabled
    elif flag.kind == rollout_pb2.FEATURE_FLAG_KIND_PERCENTAGE:
        share = flag.percent_basis_points
        out.enabled = share >= BASIS_POINTS or (bool(subject) and flag_bucket(name, subject) < share)
    else:
        out.enabled = flag.default_enabled
    return out


class FlagBoard:
    """This WL's flags as the served view has them, and a wake-up for every new view."""

    def __init__(self, state: PolicyState, clock: Clock) -> None:
        self._state = state
        self._clock = clock
        self._changed = asyncio.Event()
        state.add_listener(self._on_view)

    async def _on_view(self, view: policy_pb2.PolicyView) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def next_change(self) -> asyncio.Event:
        """Set when the next view is applied."""
        return self._changed

    def read(self, names: Sequence[str], subject: str) -> tuple[list[feature_flag_pb2.FlagValue], int]:
        """The flags ``names`` (all of this WL's when empty) for ``subject``, and the view's version."""
        view = self._state.current()
        known = {f.name: f for f in view.feature_flags if f.wl_id in ("", self._state.wl_id)} if view else {}
        now = self._clock.now()
        wanted = list(names) if names else sorted(known)
        return [evaluate(known.get(n), n, subject, now) for n in wanted], self._state.version
