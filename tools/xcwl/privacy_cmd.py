"""``xcwl privacy access-log|export|erase|retention``: personal data held by one WL node, read and changed on the
node's host, against its store and key file (the operator of that WL's node; nothing here goes through the CP).

* ``access-log``: the clear contacts this node disclosed to peers (or refused), with caller, purpose, time and
  correlation id;
* ``export --subject EMAIL|ACCOUNT_ID``: what this node holds about a trader manager, as JSON;
* ``erase --subject …``: erase it here and republish the account's offers so each importer's next sync drops its
  copy;
* ``retention --days N``: anonymise the buyer reference of checkouts older than N days (the trade record stays).

Every command except ``access-log`` is audited in the node's ``subject_requests`` table. Keys come from
``--key-file`` or the ``XCWL_DATA_KEYS`` environment variable (docs/privacy.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wl_node.checkout.retention import anonymise_before
from wl_node.privacy.accounts import TraderAccounts
from wl_node.privacy.disclosure import access_log
from wl_node.privacy_ops.subjects import erase_subject, export_subject
from wl_node.store import open_store
from xwl_runtime.errors import NotFound
from xwl_runtime.fieldcrypt import ENV_VAR, Keyring

from . import flags
from .errors import CliError
from .output import emit, printable, table
from .serve import db_url

Command = Callable[[argparse.Namespace, AsyncEngine, Keyring], Awaitable[int]]


def keyring_from(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Keyring:
    """The node's keyring: ``--key-file`` (must exist here: a new file would not open the stored data), else
    ``XCWL_DATA_KEYS``."""
    environ = os.environ if environ is None else environ
    if args.key_file:
        path = Path(args.key_file)
        if not path.exists():
            raise CliError(f"--key-file: {path} does not exist")
        return Keyring.from_file(path)
    ring = Keyring.from_env(environ)
    if ring is None:
        raise CliError(f"pass --key-file FILE (the node's data-keys.json) or set {ENV_VAR}")
    return ring


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    flags.add(parser, "--db", required=True, metavar="URL", help="the node's store")
    flags.add(parser, "--wl-id", required=True, help="the node's WL id")
    parser.add_argument("--key-file", metavar="FILE", help=f"the node's key file (or set {ENV_VAR})")
    parser.add_argument("--json", action="store_true", help="print JSON")


def store_command(func: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        keyring = keyring_from(args)

        async def main() -> int:
            engine = await open_store(db_url("--db", args.db), args.wl_id)
            try:
                return await func(args, engine, keyring)
            finally:
                await engine.dispose()

        return asyncio.run(main())

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    privacy = sub.add_parser("privacy", help="personal data held by a WL node: access log, subject requests")
    psub = privacy.add_subparsers(dest="privacy_cmd", required=True)
    log = psub.add_parser("access-log", help="clear contacts disclosed to (or refused to) peer WLs")
    add_store_flags(log)
    log.add_argument("--limit", type=int, default=100, help="newest entries shown")
    log.set_defaults(func=store_command(_access_log))
    for name, func, text in (("export", _export, "everything this node holds about a subject, as JSON"),
                             ("erase", _erase, "erase a subject here and, through the feed, at every importer")):
        cmd = psub.add_parser(name, help=text)
        add_store_flags(cmd)
        cmd.add_argument("--subject", required=True, help="the trader manager's e-mail, or a trader account id")
        cmd.add_argument("--operator", default="", help="who asks (recorded; default: the local user)")
        cmd.set_defaults(func=store_command(func))
    retention = psub.add_parser("retention", help="anonymise the personal part of checkouts older than N days")
    add_store_flags(retention)
    retention.add_argument("--days", type=int, required=True, help="retention period in days (>= 1)")
    retention.set_defaults(func=store_command(_retention))


def _operator(args: argparse.Namespace) -> str:
    return f"cli:{args.operator or getpass.getuser()}"


async def _access_log(args: argparse.Namespace, engine: AsyncEngine, keyring: Keyring) -> int:
    records = await access_log(engine, keyring, limit=args.limit)
    rows = [{"at": r.at.isoformat(), "caller": r.caller, "granted": r.granted, "purpose": r.purpose,
             "handle": r.handle, "account_id": r.account_id, "correlation_id": r.correlation_id} for r in records]
    emit(args.json, {"disclosures": rows}, table(
        ["at", "caller", "granted", "purpose", "handle", "correlation_id"],
        [(r["at"], r["caller"], "yes" if r["granted"] else "REFUSED", printable(str(r["purpose"])), r["handle"],
          r["correlation_id"]) for r in rows]))
    return 0


async def _export(args: argparse.Namespace, engine: AsyncEngine, keyring: Keyring) -> int:
    data: dict[str, Any] = await export_subject(engine, TraderAccounts(keyring, args.wl_id), args.subject,
                                                requested_by=_operator(args), now=dt.datetime.now(dt.UTC))
    emit(True, data, "")
    return 0


async def _erase(args: argparse.Namespace, engine: AsyncEngine, keyring: Keyring) -> int:
    try:
        result = await erase_subject(engine, TraderAccounts(keyring, args.wl_id), args.subject,
                                     requested_by=_operator(args), now=dt.datetime.now(dt.UTC))
    except NotFound as err:
        raise CliError(err.message) from None
    emit(args.json, {"account_id": result.account_id, "offers_republished": result.offers},
         f"erased trader account {result.account_id}; {result.offers} offers republished (importers drop the "
         "contact at their next sync)")
    return 0


async def _retention(args: argparse.Namespace, engine: AsyncEngine, keyring: Keyring) -> int:
    if args.days < 1:
        raise CliError("--days: expected at least 1")
    now = dt.datetime.now(dt.UTC)
    done = await anonymise_before(engine, now - dt.timedelta(days=args.days), now)
    emit(args.json, {"anonymised": done}, f"{done} checkouts anonymised")
    return 0
