"""``xcwl pki init|issue``: create the CA and issue certificates offline (the CA key stays on the CP's machine)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path

from xporty.cp.v1 import admin_service_pb2
from xwl_runtime import hostnames
from xwl_runtime.identity import Identity, Kind, pinned_name
from xwl_runtime.pki import LOOPBACK_NAMES, PkiDir
from xwl_runtime.tls import TlsMaterial

from . import flags
from .errors import CliError
from .ops_client import OpsClient
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
    # Plain options (not read from XCWL_CP): importing is an explicit choice, never an environment default.
    issue.add_argument("--import-to", metavar="HOST:PORT",
                       help="with --wl (node): import the new certificate into the CP at HOST:PORT at once "
                            "(ImportCertificate); the CP refuses an offline node certificate until it is imported")
    issue.add_argument("--as", dest="as_name", default="admin",
                       help="with --import-to: the operator (ops-NAME.crt/.key in --dir) who imports it")
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
    if args.import_to and (args.cp or args.ops or args.app):
        raise CliError("--import-to imports WL node certificates only (--wl without --app)")
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
    imported_serial = None
    if args.import_to:
        imported = asyncio.run(_import(Path(args.dir), args.import_to, args.as_name, cert.read_text()))
        imported_serial = imported.serial
    text = f"{identity.spiffe_id} ({', '.join(all_names)})\ncert: {cert}\nkey:  {key}"
    if imported_serial is not None:
        text += f"\nimported into {args.import_to}: serial {imported_serial}"
    emit(args.json, {"spiffe_id": identity.spiffe_id, "names": all_names, "cert": str(cert), "key": str(key),
                     "imported_serial": imported_serial}, text)
    return 0


async def _import(pki_dir: Path, target: str, as_name: str, pem: str) -> admin_service_pb2.ImportCertificateResponse:
    try:
        operator = Identity.ops(as_name)
    except ValueError as err:
        raise CliError(f"--as: {err}") from None
    pki = PkiDir(pki_dir)
    if not pki.has(operator):
        raise CliError(f"no operator certificate {pki.cert(operator)}: issue one with --ops {as_name}")
    async with OpsClient.connect(target, TlsMaterial.from_pki(pki, operator), expected=Identity.cp()) as client:
        return await client.import_certificate(pem)
