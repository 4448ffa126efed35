"""``xcwl keys rotate|retire``: the data keys that encrypt a node's personal data at rest (docs/privacy.md).

``rotate`` makes a new key active in the key file and re-encrypts every stored value in batches, printing a line
per batch, while the node keeps serving (it reloads the key file); ``retire`` removes an old key once no stored
value needs it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from wl_node.privacy_ops.rotation import retire, rotate
from wl_node.store import open_store

from . import flags
from .errors import CliError
from .serve import db_url


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="data keys of a node's personal data at rest")
    ksub = keys.add_subparsers(dest="keys_cmd", required=True)
    rot = ksub.add_parser("rotate", help="new active key; re-encrypt every stored value in batches while serving")
    ret = ksub.add_parser("retire", help="remove an old key once no stored value needs it")
    for cmd in (rot, ret):
        flags.add(cmd, "--db", required=True, metavar="URL", help="the node's store")
        flags.add(cmd, "--wl-id", required=True, help="the node's WL id")
        cmd.add_argument("--key-file", required=True, metavar="FILE", help="the node's key file (data-keys.json)")
    rot.add_argument("--new-key-id", required=True, help="id of the new key, e.g. k2")
    rot.add_argument("--batch", type=int, default=500, help="rows per transaction")
    rot.set_defaults(func=_rotate)
    ret.add_argument("--key-id", required=True, help="the old key to remove")
    ret.set_defaults(func=_retire)


def _key_file(args: argparse.Namespace) -> Path:
    path = Path(args.key_file)
    if not path.exists():
        raise CliError(f"--key-file: {path} does not exist")
    return path


def _rotate(args: argparse.Namespace) -> int:
    path = _key_file(args)
    if args.batch < 1:
        raise CliError("--batch: expected at least 1")

    async def main() -> int:
        engine = await open_store(db_url("--db", args.db), args.wl_id)
        try:
            await rotate(engine, path, args.new_key_id, batch=args.batch,
                         progress=lambda line: print(line, file=sys.stdout, flush=True))
        except ValueError as err:
            raise CliError(str(err)) from None
        finally:
            await engine.dispose()
        return 0

    return asyncio.run(main())


def _retire(args: argparse.Namespace) -> int:
    path = _key_file(args)

    async def main() -> int:
        engine = await open_store(db_url("--db", args.db), args.wl_id)
        try:
            await retire(engine, path, args.key_id)
        except ValueError as err:
            raise CliError(str(err)) from None
        finally:
            await engine.dispose()
        print(f"key {args.key_id} removed from {path}")
        return 0

    return asyncio.run(main())
