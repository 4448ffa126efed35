"""``xcwl audit list|verify``: read the CP's append-only audit log and check its hash chain and signatures."""

from __future__ import annotations

import argparse

from xporty.cp.v1 import admin_service_pb2

from .errors import EXIT_CHECK_FAILED
from .ops_client import OpsClient, add_ops_flags, ops_command
from .output import emit, to_dict
from .render import audit_table

MAX_PAGE = 1000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="the CP's audit log")
    audit_sub = audit.add_subparsers(dest="audit_cmd", required=True)
    listing = audit_sub.add_parser("list", help="list audit records")
    add_ops_flags(listing)
    listing.add_argument("--after", type=int, default=0, help="only records after this sequence number")
    listing.add_argument("--limit", type=int, default=100, help="at most this many records")
    listing.set_defaults(func=ops_command(_list))
    verify = audit_sub.add_parser("verify", help="verify every record's hash chain and signature (exit 1 if bad)")
    add_ops_flags(verify)
    verify.set_defaults(func=ops_command(_verify))


async def _list(args: argparse.Namespace, client: OpsClient) -> int:
    records: list[admin_service_pb2.AuditRecord] = []
    after = args.after
    while len(records) < args.limit:  # page until the limit or the end of the log
        page = await client.list_audit(after, min(MAX_PAGE, args.limit - len(records)))
        if not page:
            break
        records.extend(page)
        after = page[-1].sequence
    emit(args.json, {"records": [to_dict(r) for r in records]}, audit_table(records))
    return 0


async def _verify(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.verify_audit()
    human = (f"audit log OK: {resp.records} records verified" if resp.ok
             else f"audit log BROKEN at sequence {resp.first_bad_sequence} ({resp.records} records checked)")
    emit(args.json, to_dict(resp), human)
    return 0 if resp.ok else EXIT_CHECK_FAILED
