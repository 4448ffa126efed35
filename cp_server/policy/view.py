"""Building one WL's policy view from the world: the state of the world that node needs, nothing more.

A view holds the WL itself and every WL it has a pair with (any status: a node must know a pair is BLOCKED),
the policies of its pairs with both directions, its feature flags, the rollouts of the directions it exports or
imports on, the CP's token-verification keys (the rotated ones when the world
has any, else the key the builder was given), the revoked certificates not yet expired, and the CP's signed audit
head (read right after the world, so it covers every audit record of the view's version). Its version is the CP's
policy version at which the world was loaded.

``ViewBuilder`` keeps the proto form of every WL and pair record between snapshots: an incremental world load
keeps the record objects of unchanged rows (``store.world``), so after a change only the records it touched are
converted again, and building the views of 50 WLs is mostly assembling cached messages. The sections shared by
every WL (token keys, revocations) and the flags and rollouts grouped per WL are converted once per world section,
i.e. again only after a change to that section.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import timestamp_pb2

from cp_server.store.records import PairRecord, WlRecord, World, ordered
from xporty.cp.v1 import audit_pb2, identity_pb2, policy_pb2, registry_pb2, rollout_pb2

from . import protos, trust_protos


def build_view(
    world: World, wl_id: str, token_keys: Sequence[identity_pb2.VerificationKey]
) -> policy_pb2.PolicyView | None:
    """The view of ``wl_id`` at ``world.version``, or None when the WL is not registered (no caching)."""
    return ViewBuilder(token_keys).build(world, wl_id)


class ViewBuilder:
    """Builds views, converting each WL and pair record to its proto once for as long as the record lives."""

    def __init__(self, token_keys: Sequence[identity_pb2.VerificationKey]) -> None:
        self._token_keys = list(token_keys)
        # Keyed by id; the record is kept beside its proto, so the id cannot be reused while the entry exists,
        # and a hit is checked by identity (a changed row is a new record object).
        self._wls: dict[str, tuple[WlRecord, registry_pb2.WhiteLabel]] = {}
        self._pairs: dict[tuple[str, str], tuple[PairRecord, policy_pb2.PairPolicy]] = {}
        self._generated: tuple[World | None, timestamp_pb2.Timestamp] = (None, timestamp_pb2.Timestamp())
        # Sections shared by every WL or grouped per WL, converted once per world section: an incremental world
        # load keeps the section object when none of its rows changed, so they are keyed by identity.
        self._keys: tuple[object, list[identity_pb2.VerificationKey]] = (None, [])
        self._revoked: tuple[object, list[policy_pb2.RevokedCertificate]] = (None, [])
        self._flags: tuple[object, dict[str, list[rollout_pb2.FeatureFlag]]] = (None, {})
        self._rollouts: tuple[object, dict[str, list[rollout_pb2.DirectionRollout]]] = (None, {})

    def _wl(self, record: WlRecord) -> registry_pb2.WhiteLabel:
        cached = self._wls.get(record.wl_id)
        if cached is None or cached[0] is not record:
            cached = (record, protos.white_label(record))
            self._wls[record.wl_id] = cached
        return cached[1]

    def _pair(self, record: PairRecord) -> policy_pb2.PairPolicy:
        cached = self._pairs.get(record.key)
        if cached is None or cached[0] is not record:
            cached = (record, protos.pair_policy(record))
            self._pairs[record.key] = cached
        return cached[1]

    def _generate_time(self, world: World) -> timestamp_pb2.Timestamp:
        if self._generated[0] is not world:
            self._generated = (world, protos.timestamp(world.loaded_at))
        return self._generated[1]

    def _published_keys(self, world: World) -> list[identity_pb2.VerificationKey]:
        if self._keys[0] is not world.token_keys:
            keys = [trust_protos.verification_key(k) for k in world.token_keys] or self._token_keys
            self._keys = (world.token_keys, keys)
        return self._keys[1]

    def _revoked_entries(self, world: World) -> list[policy_pb2.RevokedCertificate]:
        if self._revoked[0] is not world.revoked:
            ordered_revoked = sorted(world.revoked.values(), key=lambda r: (r.revoke_time, r.serial))
            self._revoked = (world.revoked, [trust_protos.revoked_certificate(r) for r in ordered_revoked])
        return self._revoked[1]

    def _flags_of(self, world: World, wl_id: str) -> list[rollout_pb2.FeatureFlag]:
        if self._flags[0] is not world.flags:
            by_wl: dict[str, list[rollout_pb2.FeatureFlag]] = {}
            for key, flag in sorted(world.flags.items()):
                by_wl.setdefault(key[0], []).append(flag.to_proto())
            self._flags = (world.flags, by_wl)
        return self._flags[1].get(wl_id, [])

    def _rollouts_of(self, world: World, wl_id: str) -> list[rollout_pb2.DirectionRollout]:
        if self._rollouts[0] is not world.rollouts:
            by_wl: dict[str, list[rollout_pb2.DirectionRollout]] = {}
            for key, rollout in sorted(world.rollouts.items()):
                message = rollout.to_proto()
                for wl in dict.fromkeys(key):  # exporter and importer (once if they are the same)
                    by_wl.setdefault(wl, []).append(message)
            self._rollouts = (world.rollouts, by_wl)
        return self._rollouts[1].get(wl_id, [])

    def build(
        self, world: World, wl_id: str, audit_checkpoint: audit_pb2.AuditCheckpoint | None = None
    ) -> policy_pb2.PolicyView | None:
        """The view of ``wl_id`` at ``world.version`` carrying ``audit_checkpoint``, or None when the WL is not
        registered."""
        own = world.white_labels.get(wl_id)
        if own is None:
            return None
        partners = world.partners.get(wl_id, ())
        return policy_pb2.PolicyView(
            wl_id=wl_id,
            version=world.version,
            generate_time=self._generate_time(world),
            white_labels=[self._wl(own), *(self._wl(world.white_labels[p]) for p in partners)],
            pairs=[self._pair(world.pairs[ordered(wl_id, p)]) for p in partners],
            token_keys=self._published_keys(world),
            revoked_certificates=self._revoked_entries(world),
            audit_checkpoint=audit_checkpoint,
            feature_flags=self._flags_of(world, wl_id),
            rollouts=self._rollouts_of(world, wl_id),
        )
