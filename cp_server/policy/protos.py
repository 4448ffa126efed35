"""Store records to and from their proto messages (shared by PolicyService and AdminService)."""

from __future__ import annotations

from google.protobuf import duration_pb2

from cp_server.store.protos import timestamp as timestamp
from cp_server.store.records import DirectionRecord, PairRecord, Status, WlRecord
from cp_server.store.validation import fmt
from xporty.cp.v1 import policy_pb2, registry_pb2
from xwl_runtime.errors import InvalidArgument

_STATUS_TO_PROTO = {
    Status.ACTIVE: policy_pb2.RELATIONSHIP_STATUS_ACTIVE,
    Status.PAUSED: policy_pb2.RELATIONSHIP_STATUS_PAUSED,
    Status.BLOCKED: policy_pb2.RELATIONSHIP_STATUS_BLOCKED,
}
_STATUS_FROM_PROTO: dict[int, Status] = {v: k for k, v in _STATUS_TO_PROTO.items()}


def status_from_proto(field: str, value: int) -> Status:
    """A relationship status from the wire; UNSPECIFIED and unknown numbers are refused."""
    try:
        return _STATUS_FROM_PROTO[value]
    except KeyError:
        raise InvalidArgument.field(field, "must be ACTIVE, PAUSED or BLOCKED") from None


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(round(seconds * 1e9)))
    return d


def white_label(wl: WlRecord) -> registry_pb2.WhiteLabel:
    return registry_pb2.WhiteLabel(
        wl_id=wl.wl_id, name=wl.name, currency=wl.currency, currency_decimals=wl.currency_decimals,
        reference_rate=fmt(wl.reference_rate), trader_endpoint=wl.trader_endpoint, dns_names=list(wl.dns_names),
        create_time=timestamp(wl.created_at), update_time=timestamp(wl.updated_at),
    )


def direction(d: DirectionRecord) -> policy_pb2.DirectionPolicy:
    return policy_pb2.DirectionPolicy(
        exporter_wl=d.exporter, importer_wl=d.importer, import_enabled=d.import_enabled,
        destination_visible=d.destination_visible, export_delay=duration_pb2.Duration(seconds=d.export_delay_s),
    )


def pair_policy(p: PairRecord) -> policy_pb2.PairPolicy:
    return policy_pb2.PairPolicy(
        wl_a=p.wl_a, wl_b=p.wl_b, status=_STATUS_TO_PROTO[p.status], imbalance_limit=fmt(p.imbalance_limit),
        fx_rate=fmt(p.fx_rate), fx_version=p.fx_version, imports_frozen=p.imports_frozen,
        directions=[direction(d) for d in p.directions], changed_version=p.last_changed_version,
    )
