"""``xcwl wl serve|add|update|list``: run a WL node; register, change and list WLs at the CP (as an operator).

``--dns NAME`` (repeatable) sets the DNS names the WL node's certificate carries besides the CA-assigned pinned
name (``<wl>.wl.xporty.internal``); the CP validates them (RFC 1123 host names, no wildcards, IPs, loopback or
reserved names) and writes them into the node's next certificate (enrollment or renewal).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from typing import TYPE_CHECKING

from wl_node.settings import NodeSettings
from xporty.cp.v1 import admin_service_pb2, registry_pb2
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir

from . import flags
from .endpoint_probe import wrong_endpoint
from .errors import CliError
from .listen_check import bind_failure, ensure_bindable
from .ops_flags import add_ops_flags, ops_command
from .output import emit, key_values, to_dict
from .render import wls_table
from .serve import node_settings, traced

if TYPE_CHECKING:
    from .ops_client import OpsClient


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wl = sub.add_parser("wl", help="WL nodes and the WL registry")
    wl_sub = wl.add_subparsers(dest="wl_cmd", required=True)

    serve = wl_sub.add_parser("serve", help="run a WL node until SIGTERM (enrolls first if it has no certificate)")
    flags.add(serve, "--config", metavar="FILE",
              help="TOML file with any node setting (flags and variables override it)")
    flags.add(serve, "--wl-id", help="this node's WL id (required)")
    flags.add(serve, "--pki", metavar="DIR", help="node PKI directory: ca.crt (+ wl-<id>.crt/.key) (required)")
    flags.add(serve, "--cp", metavar="HOST:PORT", help="the CP's mTLS listener (required)")
    flags.add(serve, "--db", metavar="URL", help="the node's store, sqlite:///node.db or postgresql://… (required)")
    flags.add(serve, "--listen", metavar="HOST:PORT", help="the node's mTLS listener (default 127.0.0.1:7500)")
    flags.add(serve, "--cp-enroll", metavar="HOST:PORT", help="the CP's enrollment listener (first start only)")
    flags.add(serve, "--bootstrap-token", help="one-time enrollment token (first start only)")
    flags.add(serve, "--state-dir", metavar="DIR", help="where the last-known-good policy view is kept")
    flags.add(serve, "--order-timeout-ms", type=int, metavar="MS",
              help="deadline of one order operation at a peer exporter, retries included (default 300)")
    serve.add_argument("--cadence", action="append", default=[], metavar="NAME=SECONDS",
                       help="idle cadence of a background loop, e.g. shipper_idle=30 (repeatable; docs/scaling.md)")
    flags.add(serve, "--insecure-dev", action="store_true", default=False, help="plaintext; development only")
    serve.add_argument("--data-key-file", metavar="FILE",
                       help="key file of the personal data at rest (default <state-dir>/data-keys.json, created "
                            "0600; or set XCWL_DATA_KEYS to the keys' JSON)")
    serve.add_argument("--contact-grant", action="append", default=None, metavar="WL",
                       help="a peer WL this exporter discloses clear trader contacts to, logged (repeatable)")
    serve.add_argument("--pii-retention-days", type=int, metavar="N",
                       help="anonymise the buyer reference of checkouts after N days (default: keep)")
    flags.add(serve, "--metrics-listen", metavar="HOST:PORT",
              help="serve Prometheus metrics over plain HTTP at /metrics (default: no endpoint)")
    serve.set_defaults(func=_serve)

    add = wl_sub.add_parser("add", help="register a WL at the CP")
    add_ops_flags(add)
    add.add_argument("--id", required=True, dest="wl_id", help="WL id, e.g. wl-a")
    add.add_argument("--name", required=True, help="marketplace name")
    add.add_argument("--currency", required=True, help="credit currency code, e.g. XPY-A")
    add.add_argument("--decimals", type=int, default=2, help="decimals the currency allows (0..8)")
    add.add_argument("--reference-rate", default="1", help="value of one unit in the CP's reference unit")
    add.add_argument("--endpoint", required=True, metavar="HOST:PORT", help="the node's TraderService address")
    add.add_argument("--dns", action="append", default=[], metavar="NAME",
                     help="a DNS name of the node's certificate besides its pinned name (repeatable)")
    add.add_argument("--bootstrap-token", action="store_true",
                     help="also create a one-time enrollment token for the node and print it")
    add.add_argument("--token-ttl", type=float, default=3600.0, help="token lifetime in seconds (default 1 h)")
    add.set_defaults(func=ops_command(_add))

    update = wl_sub.add_parser("update", help="change a registered WL (unset flags keep their value)")
    add_ops_flags(update)
    update.add_argument("--id", required=True, dest="wl_id", help="WL id, e.g. wl-a")
    update.add_argument("--name", help="marketplace name")
    update.add_argument("--reference-rate", help="value of one unit in the CP's reference unit")
    update.add_argument("--endpoint", metavar="HOST:PORT", help="the node's TraderService address")
    update.add_argument("--dns", action="append", metavar="NAME",
                        help="replace the node certificate's extra DNS names (repeatable; see --clear-dns)")
    update.add_argument("--clear-dns", action="store_true", help="remove every extra DNS name")
    update.set_defaults(func=ops_command(_update))

    listing = wl_sub.add_parser("list", help="list the WL registry")
    add_ops_flags(listing)
    listing.set_defaults(func=ops_command(_list))


def _serve(args: argparse.Namespace) -> int:
    from wl_node.lean import defer_asyncio_orm

    defer_asyncio_orm()  # before the node stack imports SQLAlchemy's asyncio package (it needs no ORM)
    from wl_node.app import run_node  # imported late: the node stack is heavy and not needed to parse

    settings = node_settings(args)
    ensure_bindable("--listen", settings.listen)
    asyncio.run(_check_cp_endpoint(settings))
    try:
        with traced(f"xcwl-node-{settings.wl_id}"):
            asyncio.run(run_node(settings))
    except RuntimeError as err:
        failure = bind_failure(err)
        if failure is None:
            raise
        raise failure from None
    return 0


async def _check_cp_endpoint(settings: NodeSettings) -> None:
    """Refuse to start when --cp proves to be another server (a node, say); a CP that is down is no reason."""
    ca = PkiDir(settings.pki_dir).ca_cert
    if settings.insecure_dev or not ca.exists():
        return
    wrong = await wrong_endpoint(settings.cp_target, ca.read_bytes(), Identity.cp(), "--cp")
    if wrong:
        raise CliError(wrong)


async def _add(args: argparse.Namespace, client: OpsClient) -> int:
    """Register the WL; with --bootstrap-token print a one-time token too."""
    resp = await client.register_wl(registry_pb2.WhiteLabel(
        wl_id=args.wl_id, name=args.name, currency=args.currency, currency_decimals=args.decimals,
        reference_rate=args.reference_rate, trader_endpoint=args.endpoint, dns_names=args.dns,
    ))
    data = {"white_label": to_dict(resp.white_label), "version": resp.version}
    human = f"registered {resp.white_label.wl_id} (policy version {resp.version})\n{wls_table([resp.white_label])}"
    if args.bootstrap_token:
        token = await client.create_bootstrap_token(args.wl_id, dt.timedelta(seconds=args.token_ttl))
        expires = token.expire_time.ToDatetime(dt.UTC).isoformat(timespec="seconds")
        data["bootstrap_token"] = token.token
        data["token_expire_time"] = expires
        human += "\n" + key_values({"bootstrap token": token.token, "expires": expires, "shown": "once"})
    emit(args.json, data, human)
    return 0


async def _update(args: argparse.Namespace, client: OpsClient) -> int:
    """Change the fields given; ``--dns`` replaces the names, ``--clear-dns`` removes them."""
    request = admin_service_pb2.UpdateWlRequest(wl_id=args.wl_id)
    if args.name is not None:
        request.name = args.name
    if args.reference_rate is not None:
        request.reference_rate = args.reference_rate
    if args.endpoint is not None:
        request.trader_endpoint = args.endpoint
    if args.dns or args.clear_dns:
        request.dns_names.SetInParent()
        request.dns_names.names.extend(args.dns or [])
    resp = await client.update_wl(request)
    emit(args.json, {"white_label": to_dict(resp.white_label), "version": resp.version},
         f"updated {resp.white_label.wl_id} (policy version {resp.version})\n{wls_table([resp.white_label])}")
    return 0


async def _list(args: argparse.Namespace, client: OpsClient) -> int:
    wls = await client.list_wls()
    emit(args.json, {"white_labels": [to_dict(w) for w in wls]}, wls_table(wls))
    return 0
