"""Entry point of ``xcwl``: parse, configure logging once, dispatch. Each command group lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from xwl_runtime.logs import configure_logging

from . import flags
from .errors import CliError
from .output import printable

# Command-group modules; each exposes ``register(subparsers)``.
COMMAND_MODULES = (
    "xcwl.pki_cmd",
    "xcwl.cp_cmd",
    "xcwl.wl_cmd",
    "xcwl.token_cmd",
    "xcwl.policy_cmd",
    "xcwl.audit_cmd",
    "xcwl.offer_cmd",
    "xcwl.catalog_cmd",
    "xcwl.checkout_cmd",
    "xcwl.report_cmd",
    "xcwl.signal_cmd",
    "xcwl.risk_cmd",
    "xcwl.webhook_cmd",
    "xcwl.flag_cmd",
    "xcwl.rollout_cmd",
    "xcwl.dashboard_cmd",
    "xcwl.demo",
    "xcwl.bench_cmd",
    "xcwl.cert_cmd",
    "xcwl.config_cmd",
    "xcwl.db_cmd",
    "xcwl.privacy_cmd",
    "xcwl.keys_cmd",
)


ALSO_REGISTERED = {"token-key": "xcwl.cert_cmd"}
"""Top-level commands registered by a module of another name (the rest: ``xcwl.<command>_cmd`` or ``xcwl.demo``)."""


def _module_of(command: str) -> str | None:
    """The command-group module that registers the top-level ``command`` (``wl`` → ``xcwl.wl_cmd``); None when
    unknown (then every module is registered, for argparse's own error and help)."""
    if command in ALSO_REGISTERED:
        return ALSO_REGISTERED[command]
    for name in COMMAND_MODULES:
        if name.removeprefix("xcwl.").removesuffix("_cmd") == command:
            return name
    return None


def _command_in(argv: Sequence[str]) -> str | None:
    """The top-level command named in ``argv`` (the first positional word; ``--log-level``'s value skipped)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--log-level":
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; given ``argv`` naming a known command, only that command's module is imported
    and registered, so a long-running ``xcwl wl serve`` does not hold the other commands' modules (the CP's risk
    recomputation, Alembic, the demo and bench clients) in memory."""
    parser = argparse.ArgumentParser(prog="xcwl", description="XporY Cross-WL command line")
    flags.add(parser, "--log-level", default="WARNING", help="log level")
    sub = parser.add_subparsers(dest="command", required=True)
    command = _command_in(argv) if argv is not None else None
    only = _module_of(command) if command is not None else None
    for name in (only,) if only is not None else COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(words)
    args = parser.parse_args(words)
    configure_logging(args.log_level)
    try:
        code: int = args.func(args)
    except CliError as err:
        # The message may carry a server's text: shown escaped, never obeyed by the terminal.
        print(f"xcwl: error: {printable(err.message, keep_newlines=True)}", file=sys.stderr)
        return err.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
