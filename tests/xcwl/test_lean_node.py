"""A ``xcwl wl serve`` process loads only what a node needs: the parser of the one command it runs (not the CP's
risk recomputation, Alembic, the demo or bench clients), no OpenTelemetry SDK while tracing is off, no PostgreSQL
dialect on a SQLite store, no SQLAlchemy ORM (its asyncio package is deferred), no PyJWT before a token is issued or
verified."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from xcwl import cli

PROBE = """
import json, sys
from xcwl import cli
args = cli.build_parser(["--log-level", "INFO", "wl", "serve"]).parse_args(
    ["--log-level", "INFO", "wl", "serve", "--wl-id", "wl-a", "--db", "sqlite:///x.db"])
from wl_node.lean import defer_asyncio_orm
defer_asyncio_orm()  # what `xcwl wl serve` does before it imports the node
import wl_node.app
from xwl_runtime import tracing
print(json.dumps({"command": args.command, "tracing": tracing.enabled(),
                  "loaded": sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[1:])))}))
"""
NOT_IN_A_NODE = ("alembic", "cp_server.risk.recompute", "cp_server.risk.engine", "xcwl.demo", "xcwl.bench",
                 "xcwl.dashboard", "xcwl.cp_cmd", "opentelemetry.sdk", "opentelemetry.instrumentation",
                 "sqlalchemy.dialects.postgresql", "sqlalchemy.orm", "jwt")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return dict(action.choices)


def test_every_command_is_registered_by_the_parser_built_for_it_alone() -> None:
    commands = _subparsers(cli.build_parser())
    assert {"wl", "cp", "demo", "bench", "token-key", "cert"} <= set(commands)
    for command in commands:
        alone = _subparsers(cli.build_parser([command, "--help"]))
        assert command in alone and len(alone) < len(commands), command
    # Unknown or missing commands get the full parser, so argparse lists every choice in its error.
    assert _subparsers(cli.build_parser(["no-such"])).keys() == commands.keys()
    assert _subparsers(cli.build_parser(["--log-level", "wl"])).keys() == commands.keys()


def test_a_node_process_does_not_load_cli_bench_tracing_or_postgresql_modules() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, *NOT_IN_A_NODE], capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(out.stdout)
    assert result == {"command": "wl", "tracing": False, "loaded": []}, out.stderr[-2000:]


DEFERRED = """
import asyncio, json, sys
from wl_node.lean import defer_asyncio_orm
first = defer_asyncio_orm()
again = defer_asyncio_orm()
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
import sqlalchemy as sa
orm_after_engine = "sqlalchemy.orm" in sys.modules

async def main():
    engine = create_async_engine("sqlite+aiosqlite:///" + sys.argv[1])
    async with engine.begin() as conn:
        assert isinstance(conn, AsyncConnection)
        await conn.execute(sa.text("create table t (x integer)"))
        await conn.execute(sa.text("insert into t values (7)"))
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    async with async_sessionmaker(engine)() as session:
        value = await session.scalar(sa.text("select x from t"))
    await engine.dispose()
    return value, isinstance(engine, AsyncEngine), AsyncSession.__module__

value, is_engine, session_module = asyncio.run(main())
print(json.dumps({"first": first, "again": again, "orm_after_engine": orm_after_engine, "value": value,
                  "is_engine": is_engine, "session_module": session_module,
                  "orm_after_session": "sqlalchemy.orm" in sys.modules}))
"""


def test_the_deferred_asyncio_package_serves_engines_without_the_orm_and_sessions_on_demand(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", DEFERRED, str(tmp_path / "t.db")], capture_output=True, text=True,
                         timeout=120, check=True)
    assert json.loads(out.stdout) == {
        "first": True, "again": False, "orm_after_engine": False, "value": 7, "is_engine": True,
        "session_module": "sqlalchemy.ext.asyncio.session", "orm_after_session": True,
    }, out.stderr[-2000:]
