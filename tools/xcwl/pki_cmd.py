"""``xcwl pki init|issue``: create the CA and issue certificates offline (the CA key stays on the CP's machine)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path

from xporty.cp.v1 import admin_service_pb2
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir
from xwl_runtime.tls import TlsMaterial

from . import flags
from .errors import CliError
from .ops_client import OpsClient


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
    # Plain options (not read from XCWL_CP): importing is an explicit choice, never an environment default.
    issue.add_argument("--cp", metavar="HOST:PORT",
                       help="with --wl (node): import the new certificate into this CP at once (ImportCertificate); "
                            "the CP refuses an offline node certificate until it is imported")
    issue.add_argument("--as", dest="as_name", default="admin",
                       help="with --cp: the operator (ops-NAME.crt/.key in --dir) who imports it")
    issue.set_defaults(func=_issue)


def _init(args: argparse.Namespace) -> int:
    pki = PkiDir(Path(args.dir))
    pki.init_ca()
    print(f"CA created: {pki.ca_cert}\nCP certificate: {pki.cert(Identity.cp())}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    if args.cp and (args.ops or args.app):
        raise CliError("--cp imports WL node certificates only (--wl without --app)")
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
    if args.cp:
        imported = asyncio.run(_import(Path(args.dir), args.cp, args.as_name, cert.read_text()))
        print(f"imported into {args.cp}: serial {imported.serial}")
    return 0


async def _import(pki_dir: Path, target: str, as_name: str, pem: str) -> admin_service_pb2.ImportCertificateResponse:
    try:
        operator = Identity.ops(as_name)
    except ValueError as err:
        raise CliError(f"--as: {err}") from None
    pki = PkiDir(pki_dir)
    if not pki.has(operator):
        raise CliError(f"no operator certificate {pki.cert(operator)}: issue one with --ops {as_name}")
    async with OpsClient.connect(target, TlsMaterial.from_pki(pki, operator)) as client:
        return await client.import_certificate(pem)
