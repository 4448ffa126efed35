"""Building one WL's policy view from the world: the state of the world that node needs, nothing more.

A view holds the WL itself and every WL it has a pair with (any status: a node must know a pair is BLOCKED),
the policies of its pairs with both directions, and the CP's token-verification keys. Its version is the CP's
policy version at which the world was loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from xporty.cp.v1 import identity_pb2, policy_pb2

from cp_server.store.records import World, ordered

from . import protos


def build_view(
    world: World, wl_id: str, token_keys: Sequence[identity_pb2.VerificationKey]
) -> policy_pb2.PolicyView | None:
    """The view of ``wl_id`` at ``world.version``, or None when the WL is not registered."""
    own = world.white_labels.get(wl_id)
    if own is None:
        return None
    partners = world.partners.get(wl_id, ())
    return policy_pb2.PolicyView(
        wl_id=wl_id,
        version=world.version,
        generate_time=protos.timestamp(world.loaded_at),
        white_labels=[protos.white_label(own), *(protos.white_label(world.white_labels[p]) for p in partners)],
        pairs=[protos.pair_policy(world.pairs[ordered(wl_id, p)]) for p in partners],
        token_keys=list(token_keys),
    )
