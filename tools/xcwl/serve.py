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
from xwl_runtime.ratelimit import RateLimits

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


def _positive(flag: str, value: Any, kind: type[int] | type[float]) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise CliError(f"{flag}: expected a positive number, got {value!r}") from None
    if not number > 0:
        raise CliError(f"{flag}: expected a positive number, got {value!r}")
    return number


def _cp_limits(args: argparse.Namespace) -> dict[str, Any]:
    """The limit flags that were given, as CpSettings fields (absent flags keep the documented defaults)."""
    out: dict[str, Any] = {}
    for flag, name in (("--max-message-bytes", "max_receive_bytes"),
                       ("--enroll-max-message-bytes", "enroll_max_receive_bytes")):
        value = getattr(args, name_of(flag), None)
        if value is not None:
            out[name] = _positive(flag, value, int)
    rates: dict[str, Any] = {}
    for flag, name, kind in (("--rate-limit", "rate_per_s", float), ("--rate-burst", "burst", int),
                             ("--max-streams", "max_streams", int),
                             ("--enroll-rate-limit", "anonymous_rate_per_s", float),
                             ("--enroll-rate-burst", "anonymous_burst", int)):
        value = getattr(args, name_of(flag), None)
        if value is not None:
            rates[name] = _positive(flag, value, kind)
    if rates:
        out["rate_limits"] = RateLimits(**rates)
    return out


def name_of(flag: str) -> str:
    """The argparse attribute of ``flag``."""
    return flag.lstrip("-").replace("-", "_")


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
        **_cp_limits(args),
        max_identity_age=max_identity_age(getattr(args, "max_identity_age", None)),
        risk=RiskSettings(discrepancy_pause_value=pause_value(
            "--discrepancy-pause-value", getattr(args, "discrepancy_pause_value", "1000"))),
    )


MIN_IDENTITY_AGE_S = 600.0


def max_identity_age(value: float | str | None) -> dt.timedelta:
    """``--max-identity-age SECONDS``: at least 10 minutes (default 30 days)."""
    if value is None:
        return CpSettings.max_identity_age
    try:
        seconds = float(value)
    except ValueError:
        raise CliError(f"--max-identity-age: expected a number of seconds, got {str(value)[:32]!r}") from None
    if not seconds >= MIN_IDENTITY_AGE_S or seconds > 10 * 365 * 24 * 3600:
        raise CliError(f"--max-identity-age: expected {MIN_IDENTITY_AGE_S:.0f} s to 10 years, got {value}")
    return dt.timedelta(seconds=seconds)


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
        migrate_in_child=True,  # a long-lived process: keep Alembic out of its memory
        **extra,
    )
    order_timeout_ms = getattr(args, "order_timeout_ms", None)
    if order_timeout_ms is not None:
        if int(order_timeout_ms) < 1:
            raise CliError(f"--order-timeout-ms: expected a positive number of milliseconds, got {order_timeout_ms}")
        settings = replace(settings, order_timeout=dt.timedelta(milliseconds=int(order_timeout_ms)))
    cadence = getattr(args, "cadence", None)
    if cadence:
        try:
            settings = replace(settings, cadence=settings.cadence.with_overrides(list(cadence)))
        except ValueError as err:
            raise CliError(f"--cadence: {err}") from None
    return settings
