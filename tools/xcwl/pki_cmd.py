"""``xcwl pki init|issue``: create the CA and issue certificates offline (the CA key stays on the CP's machine)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir

from . import flags


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pki = sub.add_parser("pki", help="manage the PKI directory")
    pki_sub = pki.add_subparsers(dest="pki_cmd", required=True)

    init = pki_sub.add_parser("init", help="create the CA and the CP certificate")
    flags.add(init, "--dir", required=True, help="PKI directory")
    init.set_defaults(func=_init)

    issue = pki_sub.add_parser("issue", help="issue a certificate for a WL node, a WL app or an operator")
    flags.add(issue, "--dir", required=True, help="PKI directory holding ca.key")
    who = issue.add_mutually_exclusive_group(required=True)
    who.add_argument("--wl", help="WL id: a node certificate spiffe://xporty/wl/<id>")
    who.add_argument("--ops", help="operator name: spiffe://xporty/ops/<name>")
    issue.add_argument("--app", help="with --wl: a WL app certificate spiffe://xporty/wl/<id>/app/<name>")
    issue.add_argument("--dns", action="append", default=[], help="extra DNS name or IP the holder serves on")
    issue.add_argument("--hours", type=float, default=24.0, help="lifetime in hours")
    issue.set_defaults(func=_issue)


def _init(args: argparse.Namespace) -> int:
    pki = PkiDir(Path(args.dir))
    pki.init_ca()
    print(f"CA created: {pki.ca_cert}\nCP certificate: {pki.cert(Identity.cp())}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    if args.ops:
        identity = Identity.ops(args.ops)
    elif args.app:
        identity = Identity.app(args.wl, args.app)
    else:
        identity = Identity.wl(args.wl)
    cert, key = PkiDir(Path(args.dir)).issue(
        identity, dns_names=tuple(args.dns), lifetime=dt.timedelta(hours=args.hours)
    )
    print(f"{identity.spiffe_id}\ncert: {cert}\nkey:  {key}")
    return 0
