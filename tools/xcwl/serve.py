"""Settings for ``xcwl cp serve`` and ``xcwl wl serve``, validated here at the edge (fail fast, naming the flag)."""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from cp_server.risk.settings import RiskSettings
from cp_server.settings import CpSettings
from wl_node.settings import NodeSettings
from xwl_runtime.identity import Identity
from xwl_runtime.money import MoneyError, parse_decimal
from xwl_runtime.pki import PkiDir

from .errors import CliError


def host_port(flag: str, value: str) -> str:
    """``HOST:PORT`` with a numeric port (0 = any free port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise CliError(f"{flag}: expected HOST:PORT, got {value!r}")
    return value


def db_url(flag: str, value: str) -> str:
    if not value.startswith(("sqlite:", "postgresql")):
        raise CliError(f"{flag}: expected a SQLAlchemy URL (sqlite:///path.db or postgresql://…), got {value!r}")
    return value


def cp_settings(args: argparse.Namespace) -> CpSettings:
    """CpSettings from ``xcwl cp serve`` flags; the PKI directory must hold the CA and the CP's pair."""
    pki = PkiDir(Path(args.pki))
    for path in (pki.ca_cert, pki.ca_key, pki.cert(Identity.cp()), pki.key(Identity.cp())):
        if not path.exists():
            raise CliError(f"--pki: {path} is missing (create the PKI with 'xcwl pki init --dir {pki.root}')")
    return CpSettings(
        db_url=db_url("--db", args.db),
        pki_dir=pki.root,
        listen=host_port("--listen", args.listen),
        enroll_listen=host_port("--enroll-listen", args.enroll_listen),
        insecure_dev=bool(args.insecure_dev),
        risk=RiskSettings(discrepancy_pause_value=pause_value(
            "--discrepancy-pause-value", getattr(args, "discrepancy_pause_value", "1000"))),
    )


def pause_value(flag: str, value: str) -> Decimal:
    """A plain decimal >= 0 (the reference-unit value above which a discrepancy pauses its pair)."""
    try:
        parsed = parse_decimal(value)
    except MoneyError:
        parsed = Decimal(-1)
    if parsed < 0:
        raise CliError(f"{flag}: expected a decimal >= 0 like 1000 or 250.50, got {value[:32]!r}")
    return parsed


def node_settings(args: argparse.Namespace) -> NodeSettings:
    """NodeSettings from ``xcwl wl serve`` flags."""
    try:
        Identity.wl(args.wl_id)
    except ValueError as err:
        raise CliError(f"--wl-id: {err}") from None
    pki = PkiDir(Path(args.pki))
    if not args.insecure_dev and not pki.ca_cert.exists():
        raise CliError(f"--pki: {pki.ca_cert} is missing (copy the CA certificate there)")
    has_cert = pki.has(Identity.wl(args.wl_id))
    if not args.insecure_dev and not has_cert and not (args.bootstrap_token and args.cp_enroll):
        raise CliError(f"no certificate for {args.wl_id} in {pki.root}: pass --bootstrap-token and --cp-enroll "
                       "for the first start (an operator creates the token with 'xcwl token create')")
    extra: dict[str, Any] = {"state_dir": Path(args.state_dir)} if args.state_dir else {}
    settings = NodeSettings(
        wl_id=args.wl_id,
        pki_dir=pki.root,
        cp_target=host_port("--cp", args.cp),
        db_url=db_url("--db", args.db),
        listen=host_port("--listen", args.listen),
        cp_enroll_target=host_port("--cp-enroll", args.cp_enroll) if args.cp_enroll else "",
        bootstrap_token=args.bootstrap_token or "",
        insecure_dev=bool(args.insecure_dev),
        **extra,
    )
    order_timeout_ms = getattr(args, "order_timeout_ms", None)
    if order_timeout_ms is not None:
        if int(order_timeout_ms) < 1:
            raise CliError(f"--order-timeout-ms: expected a positive number of milliseconds, got {order_timeout_ms}")
        settings = replace(settings, order_timeout=dt.timedelta(milliseconds=int(order_timeout_ms)))
    return settings
