"""``xcwl policy get|list|set|direction|status|view``: pair policies and their propagation, as an operator.

``set`` changes the relationship {A, B} (status, imbalance limit, FX, kill switch); ``direction`` changes one
direction exporter → importer (import enabled, destination visibility, export delay); ``status`` shows, per node,
the version it applied against the CP's current version (drift); ``view`` prints a WL's view as the CP serves it.
"""

from __future__ import annotations

import argparse

from google.protobuf import duration_pb2

from xporty.cp.v1 import admin_service_pb2, policy_pb2

from .errors import CliError
from .ops_client import OpsClient, add_ops_flags, ops_command
from .output import emit, to_dict
from .render import node_status_table, pair_text, pairs_table

STATUSES = {
    "ACTIVE": policy_pb2.RELATIONSHIP_STATUS_ACTIVE,
    "PAUSED": policy_pb2.RELATIONSHIP_STATUS_PAUSED,
    "BLOCKED": policy_pb2.RELATIONSHIP_STATUS_BLOCKED,
}
ON_OFF = {"on": True, "off": False}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = sub.add_parser("policy", help="pair policies and their propagation to nodes")
    p_sub = policy.add_subparsers(dest="policy_cmd", required=True)

    get = p_sub.add_parser("get", help="show one pair")
    add_ops_flags(get)
    get.add_argument("--a", required=True, help="one WL of the pair")
    get.add_argument("--b", required=True, help="the other WL")
    get.set_defaults(func=ops_command(_get))

    listing = p_sub.add_parser("list", help="list pairs")
    add_ops_flags(listing)
    listing.add_argument("--wl", default="", help="only the pairs of this WL")
    listing.set_defaults(func=ops_command(_list))

    setp = p_sub.add_parser("set", help="change the relationship of a pair (created on first use)")
    add_ops_flags(setp)
    setp.add_argument("--a", required=True, help="one WL of the pair")
    setp.add_argument("--b", required=True, help="the other WL")
    setp.add_argument("--status", type=str.upper, choices=sorted(STATUSES), help="relationship status")
    setp.add_argument("--limit", help="imbalance limit in the reference unit (decimal >= 0)")
    setp.add_argument("--fx", help="FX: units of B's currency per 1 unit of A's (decimal > 0)")
    setp.add_argument("--force-fx", action="store_true", help="accept an FX step above the CP's maximum (audited)")
    freeze = setp.add_mutually_exclusive_group()
    freeze.add_argument("--freeze", dest="frozen", action="store_const", const=True, help="kill switch: freeze imports")
    freeze.add_argument("--unfreeze", dest="frozen", action="store_const", const=False, help="lift the freeze")
    setp.add_argument("--reason", default="", help="why (lands in the audit log)")
    setp.set_defaults(func=ops_command(_set))

    direction = p_sub.add_parser("direction", help="change one direction exporter -> importer")
    add_ops_flags(direction)
    direction.add_argument("--exporter", required=True, help="exporting WL")
    direction.add_argument("--importer", required=True, help="importing WL")
    direction.add_argument("--import-enabled", choices=sorted(ON_OFF), help="importer's choice to import")
    direction.add_argument("--visible", choices=sorted(ON_OFF), help="exporter shows its offers to the importer")
    direction.add_argument("--export-delay", type=int, metavar="SECONDS", help="wait before new offers are shown")
    direction.add_argument("--reason", default="", help="why (lands in the audit log)")
    direction.set_defaults(func=ops_command(_direction))

    status = p_sub.add_parser("status", help="per node: applied version, current version, drift")
    add_ops_flags(status)
    status.set_defaults(func=ops_command(_status))

    view = p_sub.add_parser("view", help="a WL's policy view as the CP serves it (GetPolicies)")
    add_ops_flags(view)
    view.add_argument("--wl", required=True, help="whose view")
    view.set_defaults(func=ops_command(_view))


def _pair_output(args: argparse.Namespace, pair: policy_pb2.PairPolicy, version: int | None = None) -> None:
    data: dict[str, object] = {"policy": to_dict(pair)}
    human = pair_text(pair)
    if version is not None:
        data["version"] = version
        human = f"policy version {version}\n{human}"
    emit(args.json, data, human)


async def _get(args: argparse.Namespace, client: OpsClient) -> int:
    _pair_output(args, await client.get_pair(args.a, args.b))
    return 0


async def _list(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.list_pairs(args.wl)
    emit(args.json, {"policies": [to_dict(p) for p in resp.policies], "version": resp.version},
         f"policy version {resp.version}\n{pairs_table(resp.policies)}")
    return 0


def pair_request(args: argparse.Namespace) -> admin_service_pb2.UpdatePairPolicyRequest:
    """The UpdatePairPolicy request the flags describe; only the flags given are set."""
    request = admin_service_pb2.UpdatePairPolicyRequest(
        wl_a=args.a, wl_b=args.b, force_fx=args.force_fx, reason=args.reason or "xcwl policy set"
    )
    if args.status is not None:
        request.status = STATUSES[args.status]
    if args.limit is not None:
        request.imbalance_limit = args.limit
    if args.fx is not None:
        request.fx_rate = args.fx
    if args.frozen is not None:
        request.imports_frozen = args.frozen
    if not any(request.HasField(f) for f in ("status", "imbalance_limit", "fx_rate", "imports_frozen")):
        raise CliError("nothing to change: give --status, --limit, --fx, --freeze or --unfreeze")
    return request


async def _set(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.update_pair(pair_request(args))
    _pair_output(args, resp.policy, resp.version)
    return 0


def direction_request(args: argparse.Namespace) -> admin_service_pb2.UpdateDirectionPolicyRequest:
    """The UpdateDirectionPolicy request the flags describe."""
    request = admin_service_pb2.UpdateDirectionPolicyRequest(
        exporter_wl=args.exporter, importer_wl=args.importer, reason=args.reason or "xcwl policy direction"
    )
    if args.import_enabled is not None:
        request.import_enabled = ON_OFF[args.import_enabled]
    if args.visible is not None:
        request.destination_visible = ON_OFF[args.visible]
    if args.export_delay is not None:
        request.export_delay.CopyFrom(duration_pb2.Duration(seconds=args.export_delay))
    if not any(request.HasField(f) for f in ("import_enabled", "destination_visible", "export_delay")):
        raise CliError("nothing to change: give --import-enabled, --visible or --export-delay")
    return request


async def _direction(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.update_direction(direction_request(args))
    _pair_output(args, resp.policy, resp.version)
    return 0


async def _status(args: argparse.Namespace, client: OpsClient) -> int:
    nodes = await client.node_status()
    emit(args.json, {"nodes": [to_dict(n) for n in nodes]}, node_status_table(nodes))
    return 0


async def _view(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.get_policies(args.wl)
    view = resp.view
    emit(args.json, to_dict(view),
         f"view of {view.wl_id} at version {view.version}\n{pairs_table(view.pairs)}")
    return 0
