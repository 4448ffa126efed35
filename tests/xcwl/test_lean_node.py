"""A ``xcwl wl serve`` process loads only what a node needs: the parser of the one command it runs (not the CP's
risk recomputation, Alembic, the demo or bench clients), no OpenTelemetry SDK while tracing is off, no PostgreSQL
dialect on a SQLite store."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from xcwl import cli

PROBE = """
import json, sys
from xcwl import cli
args = cli.build_parser(["--log-level", "INFO", "wl", "serve"]).parse_args(
    ["--log-level", "INFO", "wl", "serve", "--wl-id", "wl-a", "--db", "sqlite:///x.db"])
import wl_node.app
from xwl_runtime import tracing
print(json.dumps({"command": args.command, "tracing": tracing.enabled(),
                  "loaded": sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[1:])))}))
"""
NOT_IN_A_NODE = ("alembic", "cp_server.risk.recompute", "cp_server.risk.engine", "xcwl.demo", "xcwl.bench",
                 "xcwl.dashboard", "xcwl.cp_cmd", "opentelemetry.sdk", "opentelemetry.instrumentation",
                 "sqlalchemy.dialects.postgresql")


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
