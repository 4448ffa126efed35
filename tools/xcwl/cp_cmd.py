"""``xcwl cp serve``: run a control-plane process until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio

from . import flags
from .serve import cp_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cp = sub.add_parser("cp", help="the control plane")
    cp_sub = cp.add_subparsers(dest="cp_cmd", required=True)
    serve = cp_sub.add_parser("serve", help="run the CP (mTLS listener + enrollment listener) until SIGTERM")
    flags.add(serve, "--pki", required=True, metavar="DIR", help="PKI directory with ca.crt/ca.key and cp.crt/cp.key")
    flags.add(serve, "--db", required=True, metavar="URL", help="sqlite:///cp.db or postgresql://user@host/db")
    flags.add(serve, "--listen", default="127.0.0.1:7400", metavar="HOST:PORT", help="mTLS listener")
    flags.add(serve, "--enroll-listen", default="127.0.0.1:7401", metavar="HOST:PORT",
              help="server-TLS listener for node enrollment")
    flags.add(serve, "--insecure-dev", action="store_true", default=False, help="plaintext; development only")
    flags.add(serve, "--discrepancy-pause-value", default="1000", metavar="DECIMAL",
              help="pause a pair when an order's two sides disagree by more than this value (reference unit)")
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from cp_server.app import run_cp  # imported late: the server stack is heavy and not needed to parse

    asyncio.run(run_cp(cp_settings(args)))
    return 0
