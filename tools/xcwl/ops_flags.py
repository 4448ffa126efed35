"""The operator commands' flags and their wrapper, without the client: registering a command group's parser (and
running ``xcwl wl serve``, which shares a module with operator commands) then loads none of the CP's stubs.

``ops_client`` re-exports both; the client itself is imported when an operator command runs.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from . import flags

if TYPE_CHECKING:
    from .ops_client import OpsClient

DEFAULT_TIMEOUT_S = 10.0
"""Deadline of one operator RPC unless ``--timeout`` says otherwise."""

OpsHandler = Callable[[argparse.Namespace, "OpsClient"], Awaitable[int]]


def add_ops_flags(parser: argparse.ArgumentParser) -> None:
    """``--cp --pki --as [--cert --key] [--timeout] [--json]``, each also read from ``XCWL_*``."""
    flags.add(parser, "--cp", required=True, metavar="HOST:PORT", help="the CP's mTLS listener")
    flags.add(parser, "--pki", metavar="DIR", help="PKI directory with ca.crt and ops-<name>.crt (required unless "
              "--insecure-dev)")
    flags.add(parser, "--as", dest="as_name", metavar="NAME", default="admin",
              help="operator name: uses ops-NAME.crt/.key from the PKI directory")
    flags.add(parser, "--cert", metavar="FILE", help="client certificate (instead of --as)")
    flags.add(parser, "--key", metavar="FILE", help="client key (with --cert)")
    flags.add(parser, "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="deadline of each RPC in seconds")
    flags.add(parser, "--json", action="store_true", default=False, help="print JSON for machines")
    flags.add(parser, "--insecure-dev", action="store_true", default=False,
              help="plaintext to a CP started with --insecure-dev, claiming the --as operator identity")


def ops_command(handler: OpsHandler) -> Callable[[argparse.Namespace], int]:
    """Turn ``async handler(args, client)`` into a command function that connects with the ops flags."""

    def run(args: argparse.Namespace) -> int:
        from .ops_client import OpsClient  # the CP's stubs, loaded when an operator command runs

        async def main() -> int:
            async with OpsClient.from_args(args) as client:
                return await handler(args, client)

        return asyncio.run(main())

    run.__doc__ = handler.__doc__
    return run
