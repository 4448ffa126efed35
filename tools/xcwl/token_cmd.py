"""``xcwl token create --wl ID``: a one-time bootstrap token with which a WL node enrolls (shown once)."""

from __future__ import annotations

import argparse
import datetime as dt

from .ops_client import OpsClient, add_ops_flags, ops_command
from .output import emit, key_values


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="enrollment tokens")
    token_sub = token.add_subparsers(dest="token_cmd", required=True)
    create = token_sub.add_parser("create", help="create a one-time bootstrap token for a WL node")
    add_ops_flags(create)
    create.add_argument("--wl", required=True, help="WL id the token enrolls")
    create.add_argument("--ttl", type=float, default=3600.0, help="lifetime in seconds (default 1 h, max 7 days)")
    create.set_defaults(func=ops_command(_create))


async def _create(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.create_bootstrap_token(args.wl, dt.timedelta(seconds=args.ttl))
    expires = resp.expire_time.ToDatetime(dt.UTC).isoformat(timespec="seconds")
    emit(args.json, {"wl_id": args.wl, "token": resp.token, "expire_time": expires},
         key_values({"wl": args.wl, "token": resp.token, "expires": expires}))
    return 0
