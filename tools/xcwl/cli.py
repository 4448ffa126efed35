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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xcwl", description="XporY Cross-WL command line")
    flags.add(parser, "--log-level", default="WARNING", help="log level")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
