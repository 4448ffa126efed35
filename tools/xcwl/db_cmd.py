"""``xcwl db upgrade|downgrade|current --cp|--wl --db URL``: the CP's or a node's schema, by Alembic.

Servers migrate their store on start (``upgrade heads``: one branch per feature); this command does it ahead of a
deployment, shows where a store stands, and steps a branch back. The Alembic configuration is built here (script
location and version table of the chosen store), so no ``alembic.ini`` is needed; an upgrade takes the same
PostgreSQL advisory lock as a starting server, so replicas and this command never migrate at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from xwl_runtime import db

from . import flags
from .errors import CliError
from .output import emit, printable
from .serve import db_url


@dataclass(frozen=True)
class Store:
    """Where a kind of store keeps its migrations and its version table."""

    name: str
    script_location: Path
    version_table: str


def _store(kind: str) -> Store:
    if kind == "cp":
        from cp_server.app import MIGRATIONS_DIR, VERSION_TABLE

        return Store("CP", MIGRATIONS_DIR, VERSION_TABLE)
    from wl_node.store import MIGRATIONS_DIR as NODE_DIR
    from wl_node.store import VERSION_TABLE as NODE_TABLE

    return Store("node", NODE_DIR, NODE_TABLE)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dbp = sub.add_parser("db", help="schema migrations of the CP's and the nodes' stores (Alembic)")
    db_sub = dbp.add_subparsers(dest="db_cmd", required=True)
    for name, help_text, func in (
        ("upgrade", "apply every pending migration (all feature branches: heads)", _upgrade),
        ("downgrade", "step the schema back to --to REVISION (or 'base'; a branch: BRANCH@-1)", _downgrade),
        ("current", "the revisions a store is at, the heads, and whether it is up to date", _current),
    ):
        p = db_sub.add_parser(name, help=help_text)
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--cp", dest="kind", action="store_const", const="cp", help="the CP's store")
        which.add_argument("--wl", dest="kind", action="store_const", const="wl", help="a WL node's store")
        flags.add(p, "--db", required=True, metavar="URL", help="sqlite:///path.db or postgresql://user@host/db")
        flags.add(p, "--json", action="store_true", default=False, help="print JSON for machines")
        if name == "downgrade":
            p.add_argument("--to", required=True, metavar="REVISION", help="target revision, 'base' or BRANCH@-N")
        p.set_defaults(func=func)


@contextmanager
def _alembic(kind: str, url: str) -> Iterator[tuple[Config, sa.Connection, Store]]:
    store = _store(kind)
    engine = db.create_sync_engine(db_url("--db", url))
    try:
        with engine.connect() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(store.script_location))
            cfg.attributes["connection"] = conn
            cfg.attributes["version_table"] = store.version_table
            yield cfg, conn, store
            conn.commit()
    except (CommandError, sa.exc.SQLAlchemyError) as err:
        raise _one_line(err) from None
    finally:
        engine.dispose()


def _one_line(err: Exception) -> CliError:
    """A migration or database failure as one line (the driver's first line, escaped)."""
    if isinstance(err, CommandError):
        return CliError(f"alembic: {printable(str(err).splitlines()[0])[:200]}")
    cause = getattr(err, "orig", None) or err
    first = (str(cause).splitlines() or [""])[0]
    return CliError(f"--db: {type(err).__name__}: {printable(first)[:200]}")


def state(kind: str, url: str) -> dict[str, Any]:
    """``{"store", "current": [...], "heads": [...], "up_to_date"}`` of the store at ``url``."""
    with _alembic(kind, url) as (cfg, conn, store):
        context = MigrationContext.configure(conn, opts={"version_table": store.version_table})
        current = sorted(context.get_current_heads())
        script = ScriptDirectory.from_config(cfg)
        heads = sorted(script.get_heads())
        # A head another revision depends on is recorded only through its dependant: count what current implies.
        applied = {rev.revision for rev in script.iterate_revisions(tuple(current), "base")} if current else set()
    return {"store": store.name, "current": current, "heads": heads, "up_to_date": set(heads) <= applied}


def _report(args: argparse.Namespace, action: str) -> int:
    data = state(args.kind, args.db)
    human = (f"{action}{data['store']} store at {', '.join(data['current']) or 'base (empty)'}; heads "
             f"{', '.join(data['heads'])}; {'up to date' if data['up_to_date'] else 'migrations pending'}")
    emit(args.json, data, human)
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    try:
        db.upgrade(db_url("--db", args.db), _store(args.kind).script_location,
                   version_table=_store(args.kind).version_table)
    except (CommandError, sa.exc.SQLAlchemyError) as err:
        raise _one_line(err) from None
    return _report(args, "upgraded: ")


def _downgrade(args: argparse.Namespace) -> int:
    with _alembic(args.kind, args.db) as (cfg, _, _store_):
        command.downgrade(cfg, args.to)
    return _report(args, f"downgraded to {args.to}: ")


def _current(args: argparse.Namespace) -> int:
    return _report(args, "")
