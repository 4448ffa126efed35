"""``xcwl flag set|list|history``: per-WL feature flags (RolloutService; every change audited and streamed to the
WL's node in its policy view, ``docs/rollout.md``)."""

from __future__ import annotations

import argparse
import datetime as dt
import re

from xporty.cp.v1 import rollout_pb2, rollout_service_pb2

from .errors import CliError
from .ops_client import OpsClient, add_ops_flags, ops_command
from .output import emit, table, to_dict

TTL_RE = re.compile(r"^(\d+)([dh])$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    flag = sub.add_parser("flag", help="per-WL feature flags")
    f_sub = flag.add_subparsers(dest="flag_cmd", required=True)

    setf = f_sub.add_parser("set", help="SetFeatureFlag: create or replace a flag of one WL (audited)")
    add_ops_flags(setf)
    setf.add_argument("wl", help="the WL")
    setf.add_argument("name", help="flag name (lower-case letters, digits, '.', '_', '-')")
    value = setf.add_mutually_exclusive_group(required=True)
    value.add_argument("--on", dest="value", action="store_const", const="on", help="boolean flag, on")
    value.add_argument("--off", dest="value", action="store_const", const="off", help="boolean flag, off")
    value.add_argument("--percent", type=float, help="percentage flag: on for this share of subjects (0-100)")
    setf.add_argument("--default-on", action="store_true", help="read as on after expiry (default: off)")
    setf.add_argument("--owner", required=True, help="who owns the flag")
    expiry = setf.add_mutually_exclusive_group(required=True)
    expiry.add_argument("--expires", help="expiry date (ISO-8601, UTC if no zone)")
    expiry.add_argument("--ttl", help="expiry from now: e.g. 30d or 12h")
    setf.add_argument("--description", default="", help="what the flag controls")
    setf.add_argument("--reason", default="", help="why (lands in the audit log)")
    setf.add_argument("--force", action="store_true",
                      help="set it even if the WL's node has not reported the feature_flags capability (audited)")
    setf.set_defaults(func=ops_command(_set))

    listing = f_sub.add_parser("list", help="flags of one WL or of all")
    add_ops_flags(listing)
    listing.add_argument("--wl", default="", help="only this WL's flags")
    listing.set_defaults(func=ops_command(_list))

    history = f_sub.add_parser("history", help="the audited changes of one flag")
    add_ops_flags(history)
    history.add_argument("wl", help="the WL")
    history.add_argument("name", help="flag name")
    history.set_defaults(func=ops_command(_history))


def _expiry(args: argparse.Namespace) -> dt.datetime:
    if args.ttl:
        match = TTL_RE.match(args.ttl)
        if match is None:
            raise CliError("--ttl: expected a number of days or hours, e.g. 30d or 12h")
        amount, unit = int(match.group(1)), match.group(2)
        return dt.datetime.now(dt.UTC) + (dt.timedelta(days=amount) if unit == "d" else dt.timedelta(hours=amount))
    try:
        when = dt.datetime.fromisoformat(args.expires)
    except ValueError:
        raise CliError("--expires: expected an ISO-8601 date or time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _value(f: rollout_pb2.FeatureFlag) -> str:
    if f.kind == rollout_pb2.FEATURE_FLAG_KIND_PERCENTAGE:
        return f"{f.percent_basis_points / 100:g}%"
    return "on" if f.enabled else "off"


async def _set(args: argparse.Namespace, client: OpsClient) -> int:
    flag = rollout_pb2.FeatureFlag(wl_id=args.wl, name=args.name, default_enabled=args.default_on,
                                   owner=args.owner, description=args.description)
    if args.percent is not None:
        if not 0 <= args.percent <= 100:
            raise CliError("--percent: between 0 and 100")
        flag.kind = rollout_pb2.FEATURE_FLAG_KIND_PERCENTAGE
        flag.percent_basis_points = round(args.percent * 100)
    else:
        flag.kind = rollout_pb2.FEATURE_FLAG_KIND_BOOLEAN
        flag.enabled = args.value == "on"
    flag.expire_time.FromDatetime(_expiry(args))
    resp = await client.call(client.rollout.SetFeatureFlag, rollout_service_pb2.SetFeatureFlagRequest(
        flag=flag, reason=args.reason, force=args.force))
    emit(args.json, to_dict(resp), f"flag {resp.flag.wl_id}/{resp.flag.name} = {_value(resp.flag)} "
                                   f"(policy version {resp.version})")
    return 0


async def _list(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.call(client.rollout.ListFeatureFlags, rollout_service_pb2.ListFeatureFlagsRequest(
        wl_id=args.wl))
    emit(args.json, to_dict(resp), table(
        ["wl", "flag", "value", "default", "owner", "expires", "version"],
        [(f.wl_id, f.name, _value(f), "on" if f.default_enabled else "off", f.owner,
          f.expire_time.ToDatetime().isoformat(timespec="seconds") + "Z", f.changed_version) for f in resp.flags]))
    return 0


async def _history(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.call(client.rollout.ListFeatureFlagHistory, rollout_service_pb2.ListFeatureFlagHistoryRequest(
        wl_id=args.wl, name=args.name))
    emit(args.json, to_dict(resp), table(
        ["seq", "time", "actor", "after"],
        [(c.sequence, c.create_time.ToDatetime().isoformat(timespec="seconds") + "Z", c.actor, c.after_json)
         for c in resp.changes]))
    return 0
