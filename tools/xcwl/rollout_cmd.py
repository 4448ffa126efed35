"""``xcwl rollout configure|promote|hold|rollback|list``: rollout stages per direction (RolloutService; every change
audited and in both WLs' policy views, ``docs/rollout.md``)."""

from __future__ import annotations

import argparse

from xporty.cp.v1 import rollout_pb2, rollout_service_pb2

from .ops_client import OpsClient, add_ops_flags, ops_command
from .output import emit, table, to_dict

STAGES = {"pilot": rollout_pb2.ROLLOUT_STAGE_PILOT, "expansion": rollout_pb2.ROLLOUT_STAGE_EXPANSION,
          "general": rollout_pb2.ROLLOUT_STAGE_GENERAL}


def _direction(parser: argparse.ArgumentParser) -> None:
    add_ops_flags(parser)
    parser.add_argument("--exporter", required=True, help="exporting WL of the direction")
    parser.add_argument("--importer", required=True, help="importing WL of the direction")
    parser.add_argument("--reason", default="", help="why (lands in the audit log)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rollout = sub.add_parser("rollout", help="rollout stages per direction: pilot → expansion → general")
    r_sub = rollout.add_subparsers(dest="rollout_cmd", required=True)

    conf = r_sub.add_parser("configure", help="ConfigureRollout: stage limits, breach policy, stage (audited)")
    _direction(conf)
    conf.add_argument("--stage", type=str.lower, choices=sorted(STAGES), help="set the stage (new rollouts: pilot)")
    for stage in ("pilot", "expansion"):
        conf.add_argument(f"--{stage}-buyer", action="append", default=[], metavar="REF",
                          help=f"buyer reference in the {stage} allow-list (repeatable; hashed by the CP)")
        conf.add_argument(f"--{stage}-percent", type=float, help=f"share of buyers admitted at {stage} (0-100)")
        conf.add_argument(f"--{stage}-max-order", help=f"largest order value at {stage} (exporter's currency)")
        conf.add_argument(f"--{stage}-daily-cap", help=f"daily value cap at {stage} (exporter's currency)")
    breach = conf.add_mutually_exclusive_group()
    breach.add_argument("--step-back-on-breach", dest="step_back", action="store_const", const=True,
                        help="an SLO breach also steps expansion back to pilot")
    breach.add_argument("--hold-only-on-breach", dest="step_back", action="store_const", const=False,
                        help="an SLO breach only holds the stage")
    conf.add_argument("--force", action="store_true",
                      help="configure even if a node has not reported the rollout_caps capability (audited)")
    conf.set_defaults(func=ops_command(_configure))

    for name, doc in (("promote", "one stage forward (refused while held)"),
                      ("rollback", "one stage back")):
        p = r_sub.add_parser(name, help=doc)
        _direction(p)
        p.set_defaults(func=ops_command(_promote if name == "promote" else _rollback))

    hold = r_sub.add_parser("hold", help="hold the stage (no promotion), or --release the hold")
    _direction(hold)
    hold.add_argument("--release", action="store_true", help="release the hold")
    hold.set_defaults(func=ops_command(_hold))

    listing = r_sub.add_parser("list", help="directions with a rollout")
    add_ops_flags(listing)
    listing.add_argument("--wl", default="", help="only the directions of this WL")
    listing.set_defaults(func=ops_command(_list))


def _limits(args: argparse.Namespace, stage: str) -> rollout_service_pb2.RolloutLimitsInput | None:
    buyers, percent = getattr(args, f"{stage}_buyer"), getattr(args, f"{stage}_percent")
    max_order, cap = getattr(args, f"{stage}_max_order"), getattr(args, f"{stage}_daily_cap")
    if not buyers and percent is None and max_order is None and cap is None:
        return None
    return rollout_service_pb2.RolloutLimitsInput(
        cohort_buyer_references=buyers, cohort_basis_points=round((percent or 0) * 100),
        max_order_value=max_order or "", daily_value_cap=cap or "")


def describe(r: rollout_pb2.DirectionRollout) -> str:
    """One line per direction: stage, limits in force, hold."""
    limits = r.limits
    parts = [f"{r.exporter_wl}->{r.importer_wl}", rollout_pb2.RolloutStage.Name(r.stage).removeprefix("ROLLOUT_STAGE_")]
    if r.stage != rollout_pb2.ROLLOUT_STAGE_GENERAL:
        parts.append(f"cohort {len(limits.cohort_buyer_hashes)} listed + {limits.cohort_basis_points / 100:g}%")
        parts.append(f"max order {limits.max_order_value or '-'}")
        parts.append(f"daily cap {limits.daily_value_cap or '-'}")
    if r.held:
        parts.append(f"HELD: {r.hold_reason}")
    return " · ".join(parts)


def _show(args: argparse.Namespace, rollout: rollout_pb2.DirectionRollout, version: int) -> int:
    emit(args.json, {"rollout": to_dict(rollout), "version": version},
         f"{describe(rollout)} (policy version {version})")
    return 0


async def _configure(args: argparse.Namespace, client: OpsClient) -> int:
    stage = STAGES[args.stage] if args.stage else rollout_pb2.ROLLOUT_STAGE_UNSPECIFIED
    request = rollout_service_pb2.ConfigureRolloutRequest(
        exporter_wl=args.exporter, importer_wl=args.importer, stage=stage, reason=args.reason, force=args.force)
    for name in ("pilot", "expansion"):
        limits = _limits(args, name)
        if limits is not None:
            getattr(request, name).CopyFrom(limits)
    if args.step_back is not None:
        request.step_back_on_breach = args.step_back
    resp = await client.call(client.rollout.ConfigureRollout, request)
    return _show(args, resp.rollout, resp.version)


async def _promote(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.call(client.rollout.PromoteRollout, rollout_service_pb2.PromoteRolloutRequest(
        exporter_wl=args.exporter, importer_wl=args.importer, reason=args.reason))
    return _show(args, resp.rollout, resp.version)


async def _rollback(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.call(client.rollout.RollbackRollout, rollout_service_pb2.RollbackRolloutRequest(
        exporter_wl=args.exporter, importer_wl=args.importer, reason=args.reason))
    return _show(args, resp.rollout, resp.version)


async def _hold(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.call(client.rollout.HoldRollout, rollout_service_pb2.HoldRolloutRequest(
        exporter_wl=args.exporter, importer_wl=args.importer, held=not args.release, reason=args.reason))
    return _show(args, resp.rollout, resp.version)


async def _list(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.call(client.rollout.ListRollouts, rollout_service_pb2.ListRolloutsRequest(wl_id=args.wl))
    emit(args.json, to_dict(resp), table(["rollout"], [(describe(r),) for r in resp.rollouts]))
    return 0
