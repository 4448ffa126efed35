"""``xcwl pki init|issue``: create the CA and issue certificates offline (the CA key stays on the CP's machine)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from xwl_runtime import hostnames
from xwl_runtime.identity import Identity, Kind, pinned_name
from xwl_runtime.pki import LOOPBACK_NAMES, PkiDir

from . import flags
from .errors import CliError
from .output import emit


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pki = sub.add_parser("pki", help="manage the PKI directory")
    pki_sub = pki.add_subparsers(dest="pki_cmd", required=True)

    init = pki_sub.add_parser("init", help="create the CA and the CP certificate")
    flags.add(init, "--dir", required=True, help="PKI directory")
    init.add_argument("--dns", action="append", default=None, metavar="NAME",
                      help="a DNS name or IP of the CP's certificate besides cp.xporty.internal (repeatable; "
                           "default: localhost and 127.0.0.1 for a local setup)")
    flags.add(init, "--json", action="store_true", default=False, help="print JSON for machines")
    init.set_defaults(func=_init)

    issue = pki_sub.add_parser("issue", help="issue a certificate for the CP, a WL node, a WL app or an operator")
    flags.add(issue, "--dir", required=True, help="PKI directory holding ca.key")
    who = issue.add_mutually_exclusive_group(required=True)
    who.add_argument("--cp", action="store_true", help="the CP's own certificate spiffe://xporty/cp")
    who.add_argument("--wl", help="WL id: a node certificate spiffe://xporty/wl/<id>")
    who.add_argument("--ops", help="operator name: spiffe://xporty/ops/<name>")
    issue.add_argument("--app", help="with --wl: a WL app certificate spiffe://xporty/wl/<id>/app/<name>")
    issue.add_argument("--dns", action="append", default=[], metavar="NAME",
                       help="a DNS name (an IP with --cp) the holder serves on, besides its pinned name")
    issue.add_argument("--hours", type=float, default=24.0, help="lifetime in hours")
    flags.add(issue, "--json", action="store_true", default=False, help="print JSON for machines")
    issue.set_defaults(func=_issue)


def _names(values: list[str], *, allow_ip: bool) -> tuple[str, ...]:
    """Operator-given names, checked like the CP's registry checks a WL's (IP literals only for the CP)."""
    names = hostnames.normalize(values)
    for name in names:
        problem = hostnames.hostname_problem(name)
        if allow_ip and problem in ("IP addresses are not allowed", "loopback names are not allowed"):
            continue  # the CP may answer on an IP or localhost; a WL never gets them
        if problem is not None:
            raise CliError(f"--dns {name[:64]!r}: {problem}")
    return names


def _init(args: argparse.Namespace) -> int:
    pki = PkiDir(Path(args.dir))
    names = LOOPBACK_NAMES if args.dns is None else _names(args.dns, allow_ip=True)
    pki.init_ca(cp_dns_names=names)
    cp_names = [pinned_name(Identity.cp()), *names]
    emit(args.json, {"ca_cert": str(pki.ca_cert), "cp_cert": str(pki.cert(Identity.cp())), "cp_names": cp_names},
         f"CA created: {pki.ca_cert}\nCP certificate: {pki.cert(Identity.cp())} ({', '.join(cp_names)})")
    return 0


def _issue(args: argparse.Namespace) -> int:
    if args.cp:
        identity = Identity.cp()
    elif args.ops:
        identity = Identity.ops(args.ops)
    elif args.app:
        identity = Identity.app(args.wl, args.app)
    else:
        identity = Identity.wl(args.wl)
    names = _names(args.dns, allow_ip=identity.kind is Kind.CP)
    cert, key = PkiDir(Path(args.dir)).issue(identity, dns_names=names, lifetime=dt.timedelta(hours=args.hours))
    all_names = [pinned_name(identity), *names]
    emit(args.json, {"spiffe_id": identity.spiffe_id, "names": all_names, "cert": str(cert), "key": str(key)},
         f"{identity.spiffe_id} ({', '.join(all_names)})\ncert: {cert}\nkey:  {key}")
    return 0
