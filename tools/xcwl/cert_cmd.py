"""``xcwl cert revoke|list-revoked|import`` and ``xcwl token-key rotate``: the trust lifecycle (AdminService).

Every change is audited on the CP. A revocation reaches every node with its next policy view; the CP itself
refuses the certificate from the next RPC on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xporty.cp.v1 import admin_service_pb2, policy_pb2

from .errors import CliError
from .ops_client import OpsClient, add_ops_flags, ops_command
from .output import emit, to_dict

MAX_CERT_FILE_BYTES = 16 * 1024


def printable(text: str) -> str:
    """Untrusted text made safe for a terminal: control, bidi and non-printable characters escaped."""
    return "".join(ch if ch.isprintable() and ch not in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                   else ch.encode("unicode_escape").decode("ascii") for ch in text)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cert = sub.add_parser("cert", help="revoke and import WL node certificates")
    c_sub = cert.add_subparsers(dest="cert_cmd", required=True)

    revoke = c_sub.add_parser("revoke", help="RevokeCertificate: one serial, or every current certificate of a WL")
    add_ops_flags(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", help="certificate serial, hex")
    which.add_argument("--wl", help="revoke every unexpired certificate of this WL")
    revoke.add_argument("--reason", default="", help="why (audited and sent to the nodes)")
    revoke.set_defaults(func=ops_command(_revoke))

    listing = c_sub.add_parser("list-revoked", help="revocations whose certificate has not expired")
    add_ops_flags(listing)
    listing.add_argument("--wl", default="", help="only this WL")
    listing.set_defaults(func=ops_command(_list))

    imp = c_sub.add_parser("import", help="ImportCertificate: record a WL certificate issued offline")
    add_ops_flags(imp)
    imp.add_argument("file", help="the certificate, PEM")
    imp.set_defaults(func=ops_command(_import))

    token_key = sub.add_parser("token-key", help="the CP's JWT signing keys")
    t_sub = token_key.add_subparsers(dest="token_key_cmd", required=True)
    rotate = t_sub.add_parser("rotate", help="RotateTokenKey: sign with a new kid; the old one stays one lifetime")
    add_ops_flags(rotate)
    rotate.set_defaults(func=ops_command(_rotate))


def revoked_table(revoked: list[policy_pb2.RevokedCertificate]) -> str:
    if not revoked:
        return "no revoked certificates"
    lines = [f"{'SERIAL':<42} {'WL':<20} {'REVOKED AT':<22} REASON"]
    for r in revoked:
        when = r.revoke_time.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{r.serial:<42} {r.wl_id:<20} {when:<22} {printable(r.reason)}")
    return "\n".join(lines)


async def _revoke(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.revoke_certificate(admin_service_pb2.RevokeCertificateRequest(
        serial=args.serial or "", wl_id=args.wl or "", reason=args.reason))
    human = (f"revoked {len(resp.revoked)} certificate(s) at version {resp.version}\n"
             + revoked_table(list(resp.revoked)) if resp.revoked else "already revoked; nothing changed")
    emit(args.json, to_dict(resp), human)
    return 0


async def _list(args: argparse.Namespace, client: OpsClient) -> int:
    revoked = await client.list_revoked(args.wl)
    emit(args.json, {"revoked": [to_dict(r) for r in revoked]}, revoked_table(revoked))
    return 0


def _read_certificate(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CERT_FILE_BYTES + 1)
    except OSError as err:
        raise CliError(f"cannot read {path}: {err.strerror}") from None
    if len(data) > MAX_CERT_FILE_BYTES:
        raise CliError(f"{path}: larger than {MAX_CERT_FILE_BYTES} bytes")
    return data.decode("ascii", errors="replace")


async def _import(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.import_certificate(_read_certificate(Path(args.file)))
    what = "imported" if resp.imported else "already recorded"
    emit(args.json, to_dict(resp), f"{what}: serial {resp.serial} for WL {resp.wl_id}")
    return 0


async def _rotate(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.rotate_token_key()
    retire = resp.previous_retire_time.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
    emit(args.json, to_dict(resp),
         f"signing with kid {resp.current.kid}; kid {resp.previous_kid} stays published until {retire}")
    return 0
