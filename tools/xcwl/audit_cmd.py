"""``xcwl audit list|verify|checkpoint``: read the CP's append-only audit log, check its hash chain and signatures,
and pin it with signed checkpoints kept outside the CP's database.

``audit checkpoint [--out FILE]`` exports the CP's signed head (checked against ``ca.crt`` before it is written);
``audit verify --checkpoint FILE --node HOST:PORT`` (both repeatable) hands the CP the exported checkpoints and the
ones the WL nodes keep, and the CP reports, per checkpoint, whether its record is still there with its hash. A log
whose tail was cut and whose head was rewound verifies on its own; against a checkpoint it does not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from google.protobuf import json_format

from xporty.cp.v1 import admin_service_pb2, audit_pb2
from xwl_runtime.audit_checkpoint import CheckpointInvalid, ca_public_key, verify_checkpoint
from xwl_runtime.identity import Identity
from xwl_runtime.safe_files import PUBLIC_MODE, write_atomically

from .errors import EXIT_CHECK_FAILED, CliError
from .node_client import NodeClient
from .ops_client import OpsClient, add_ops_flags, material_from_args, ops_command
from .output import emit, printable, to_dict
from .render import audit_table

MAX_PAGE = 1000
MAX_CHECKPOINT_FILE_BYTES = 64 * 1024
"""A checkpoint file is a few hundred bytes; anything larger is not one."""
MAX_CHECKPOINTS = 64
"""As many as the CP compares in one verification."""

Result = admin_service_pb2.AuditCheckpointResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="the CP's audit log")
    audit_sub = audit.add_subparsers(dest="audit_cmd", required=True)
    listing = audit_sub.add_parser("list", help="list audit records")
    add_ops_flags(listing)
    listing.add_argument("--after", type=int, default=0, help="only records after this sequence number")
    listing.add_argument("--limit", type=int, default=100, help="at most this many records")
    listing.set_defaults(func=ops_command(_list))
    verify = audit_sub.add_parser(
        "verify", help="verify every record's hash chain and signature, and that the log still contains the "
                       "given checkpoints (exit 1 if not)")
    add_ops_flags(verify)
    verify.add_argument("--checkpoint", action="append", default=[], metavar="FILE",
                        help="a checkpoint exported by 'xcwl audit checkpoint' (repeatable)")
    verify.add_argument("--node", action="append", default=[], metavar="WL@HOST:PORT",
                        help="a WL node whose kept checkpoint to compare, read over mTLS; the node must prove it is "
                             "WL's (repeatable)")
    verify.set_defaults(func=ops_command(_verify))
    checkpoint = audit_sub.add_parser("checkpoint", help="export the CP's signed audit head")
    add_ops_flags(checkpoint)
    checkpoint.add_argument("--out", metavar="FILE", help="write the checkpoint (JSON) here instead of stdout")
    checkpoint.set_defaults(func=ops_command(_checkpoint))


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


# --- checkpoints ----------------------------------------------------------------------------------------------------
def checkpoint_json(checkpoint: audit_pb2.AuditCheckpoint) -> str:
    """The export format: the checkpoint in proto JSON (signature base64)."""
    return json_format.MessageToJson(checkpoint, preserving_proto_field_name=True, indent=1) + "\n"


def read_checkpoint_file(path: Path) -> audit_pb2.AuditCheckpoint:
    """Parse an exported checkpoint; a clear CliError for anything that is not one."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CHECKPOINT_FILE_BYTES + 1)
    except OSError as err:
        raise CliError(f"--checkpoint {path}: {err.strerror}") from None
    if len(raw) > MAX_CHECKPOINT_FILE_BYTES:
        raise CliError(f"--checkpoint {path}: larger than {MAX_CHECKPOINT_FILE_BYTES} bytes; not a checkpoint")
    try:
        return json_format.Parse(raw, audit_pb2.AuditCheckpoint())
    except (json_format.ParseError, UnicodeDecodeError) as err:
        raise CliError(f"--checkpoint {path}: not a checkpoint ({str(err)[:120]})") from None


async def _checkpoint(args: argparse.Namespace, client: OpsClient) -> int:
    checkpoint = await client.audit_checkpoint()
    material = material_from_args(args)
    if material is not None:  # keep only what the CA really signed
        try:
            verify_checkpoint(checkpoint, ca_public_key(material.ca_pem))
        except CheckpointInvalid as err:
            raise CliError(f"the CP's checkpoint does not verify against ca.crt: {err}") from None
    text = checkpoint_json(checkpoint)
    if args.out:
        write_atomically(Path(args.out), text.encode(), mode=PUBLIC_MODE)
        emit(args.json, to_dict(checkpoint),
             f"audit checkpoint: sequence {checkpoint.sequence} head {checkpoint.head_hash} -> {args.out}")
    else:
        print(text, end="")
    return 0


async def _node_checkpoints(args: argparse.Namespace) -> list[tuple[str, audit_pb2.AuditCheckpoint]]:
    if not args.node:
        return []
    material = material_from_args(args)
    if material is None:
        raise CliError("--node reads the node over mTLS: give --pki (not --insecure-dev)")
    found = []
    for spec in args.node:
        wl_id, sep, target = spec.partition("@")
        try:
            expected = Identity.wl(wl_id)
        except ValueError:
            sep = ""
        if not sep or not target:
            raise CliError(f"--node {printable(spec[:64])}: expected WL@HOST:PORT (e.g. wl-a@127.0.0.1:7500)")
        async with NodeClient.connect(target, material, expected=expected, timeout=args.timeout) as node:
            checkpoint = await node.audit_checkpoint()
        if checkpoint is None:
            raise CliError(f"--node {target}: the node keeps no audit checkpoint yet")
        found.append((f"node {target}", checkpoint))
    return found


def _describe_check(source: str, check: admin_service_pb2.AuditCheckpointCheck) -> str:
    if check.result == Result.AUDIT_CHECKPOINT_RESULT_MATCH:
        return f"{source}: sequence {check.sequence} matches"
    if check.result == Result.AUDIT_CHECKPOINT_RESULT_TRUNCATED:
        return (f"{source}: TRUNCATED: record {check.sequence} is missing (the stored log ends at "
                f"{check.stored_sequence}; records {check.stored_sequence + 1}..{check.sequence} were cut)")
    return (f"{source}: REWRITTEN: record {check.sequence} has hash {check.stored_hash[:16]}…, the checkpoint "
            f"signed {check.checkpoint_hash[:16]}…")


async def _verify(args: argparse.Namespace, client: OpsClient) -> int:
    sources = [(f"checkpoint {path}", read_checkpoint_file(Path(path))) for path in args.checkpoint]
    sources += await _node_checkpoints(args)
    if len(sources) > MAX_CHECKPOINTS:
        raise CliError(f"at most {MAX_CHECKPOINTS} checkpoints (--checkpoint and --node) per verification")
    resp = await client.verify_audit([checkpoint for _, checkpoint in sources])
    lines = [(f"audit log OK: {resp.records} records verified" if resp.ok
              else f"audit log BROKEN at sequence {resp.first_bad_sequence} ({resp.records} records checked)")]
    lines += [_describe_check(source, check) for (source, _), check in zip(sources, resp.checkpoint_checks,
                                                                            strict=True)]
    data = to_dict(resp)
    data["sources"] = [source for source, _ in sources]
    emit(args.json, data, "\n".join(lines))
    return 0 if resp.ok else EXIT_CHECK_FAILED
