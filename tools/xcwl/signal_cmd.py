"""``xcwl signal send|list``: operator risk signals for one direction exporter → importer (SignalService).

An operator DISABLE is never lifted automatically; an operator ENABLE of an automatically disabled direction
ends that disable (``docs/risk.md``). Every signal is stored, audited and pushed to the nodes concerned.
"""

from __future__ import annotations

import argparse

from xporty.cp.v1 import signal_pb2, signal_service_pb2

from .errors import CliError
from .ops_client import OpsClient, add_ops_flags, ops_command
from .output import emit, to_dict
from .render_trade import signal_text, signals_table

KINDS = {"disable": signal_pb2.SIGNAL_KIND_DISABLE, "enable": signal_pb2.SIGNAL_KIND_ENABLE}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    signal = sub.add_parser("signal", help="operator risk signals (disable / re-enable a direction)")
    s_sub = signal.add_subparsers(dest="signal_cmd", required=True)

    send = s_sub.add_parser("send", help="SendSignal: disable or re-enable one direction")
    add_ops_flags(send)
    send.add_argument("--kind", required=True, type=str.lower, choices=sorted(KINDS), help="what the nodes do")
    send.add_argument("--exporter", required=True, help="exporting WL of the direction")
    send.add_argument("--importer", required=True, help="importing WL of the direction")
    send.add_argument("--reason", required=True, help="why (stored, audited and shown to the nodes)")
    send.set_defaults(func=ops_command(_send))

    listing = s_sub.add_parser("list", help="issued signals, newest first (ListSignals)")
    add_ops_flags(listing)
    listing.add_argument("--limit", type=int, default=100, help="at most this many")
    listing.set_defaults(func=ops_command(_list))


def signal_request(args: argparse.Namespace) -> signal_service_pb2.SendSignalRequest:
    """The SendSignal request the flags describe."""
    if not args.reason.strip():
        raise CliError("--reason must not be empty")
    return signal_service_pb2.SendSignalRequest(kind=KINDS[args.kind], exporter_wl=args.exporter,
                                                importer_wl=args.importer, reason=args.reason)


async def _send(args: argparse.Namespace, client: OpsClient) -> int:
    sent = await client.send_signal(signal_request(args))
    emit(args.json, {"signal": to_dict(sent)}, signal_text(sent))
    return 0


async def _list(args: argparse.Namespace, client: OpsClient) -> int:
    signals = await client.signals(page_size=max(1, args.limit))
    emit(args.json, {"signals": [to_dict(s) for s in signals]}, signals_table(signals))
    return 0
