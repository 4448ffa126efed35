"""Settings for ``xcwl cp serve`` and ``xcwl wl serve``, from layered sources, validated here at the edge.

Precedence, lowest first: the settings' defaults < the ``--config`` TOML file < ``XCWL_CP__<KEY>`` /
``XCWL_WL__<KEY>`` variables (``__`` nests: ``XCWL_CP__RISK__ALERT_THRESHOLD``) < a flag's own variable
(``XCWL_DB`` for ``--db``) < the flag. Every field of ``CpSettings`` / ``NodeSettings`` (nested tables included)
is a key; see docs/configuration.md. A bad value is refused naming the flag, the variable or the key.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from cp_server.settings import CpSettings
from wl_node.settings import NodeSettings
from xwl_runtime import tracing
from xwl_runtime.fieldcrypt import ENV_VAR
from xwl_runtime.identity import Identity
from xwl_runtime.money import MoneyError, parse_decimal
from xwl_runtime.pki import PkiDir

from .config_file import build, check_layer, coerce, env_layer, load_toml, merge
from .errors import CliError
from .flags import env_name

CP_ENV_PREFIX = "XCWL_CP__"
"""Variables ``XCWL_CP__<KEY>`` set any CP setting (``__`` separates nested tables)."""
WL_ENV_PREFIX = "XCWL_WL__"
"""Variables ``XCWL_WL__<KEY>`` set any node setting."""


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


def name_of(flag: str) -> str:
    """The argparse attribute of ``flag``."""
    return flag.lstrip("-").replace("-", "_")


@contextlib.contextmanager
def traced(service_name: str) -> Iterator[None]:
    """Tracing as the standard ``OTEL_*`` environment variables ask (off without them), flushed on exit."""
    tracing.configure_tracing(os.environ, default_service_name=service_name)
    try:
        yield
    finally:
        tracing.shutdown_tracing()


MIN_IDENTITY_AGE_S = 600.0


def max_identity_age(value: float | str | None, flag: str = "--max-identity-age") -> dt.timedelta:
    """``--max-identity-age SECONDS``: at least 10 minutes (default 30 days)."""
    if value is None:
        return CpSettings.max_identity_age
    try:
        seconds = float(value)
    except ValueError:
        raise CliError(f"{flag}: expected a number of seconds, got {str(value)[:32]!r}") from None
    if not seconds >= MIN_IDENTITY_AGE_S or seconds > 10 * 365 * 24 * 3600:
        raise CliError(f"{flag}: expected {MIN_IDENTITY_AGE_S:.0f} s to 10 years, got {value}")
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


def _order_timeout(flag: str, value: Any) -> dt.timedelta:
    try:
        ms = int(value)
    except (TypeError, ValueError):
        ms = 0
    if ms < 1:
        raise CliError(f"{flag}: expected a positive number of milliseconds, got {value}")
    return dt.timedelta(milliseconds=ms)


def _wl_id(flag: str, value: str) -> str:
    try:
        Identity.wl(value)
    except ValueError as err:
        raise CliError(f"{flag}: {err}") from None
    return value


@dataclass(frozen=True)
class FlagSpec:
    """A serve flag, the settings key it sets (dotted for nested tables) and its conversion."""

    flag: str
    key: str
    convert: Callable[[str, Any], Any]


def _text(flag: str, value: Any) -> Any:
    return value


def _path(flag: str, value: Any) -> Path:
    return Path(coerce(Path, value, flag))


def _wl_ids(flag: str, value: Any) -> tuple[str, ...]:
    """``--contact-grant WL`` (repeatable): registered-form WL ids."""
    wl_ids: tuple[str, ...] = coerce(tuple[str, ...], value, flag)
    for wl in wl_ids:
        _wl_id(flag, wl)
    return wl_ids


def _days(flag: str, value: Any) -> dt.timedelta:
    return dt.timedelta(days=_pos_int(flag, value))


def _bool(flag: str, value: Any) -> bool:
    return bool(coerce(bool, value, flag))


def _pos_int(flag: str, value: Any) -> int:
    return int(_positive(flag, value, int))


def _pos_float(flag: str, value: Any) -> float:
    return float(_positive(flag, value, float))


CP_FLAGS = (
    FlagSpec("--pki", "pki_dir", _text),
    FlagSpec("--db", "db_url", db_url),
    FlagSpec("--listen", "listen", host_port),
    FlagSpec("--enroll-listen", "enroll_listen", host_port),
    FlagSpec("--max-identity-age", "max_identity_age", lambda flag, v: max_identity_age(v, flag)),
    FlagSpec("--insecure-dev", "insecure_dev", _bool),
    FlagSpec("--max-message-bytes", "max_receive_bytes", _pos_int),
    FlagSpec("--enroll-max-message-bytes", "enroll_max_receive_bytes", _pos_int),
    FlagSpec("--rate-limit", "rate_limits.rate_per_s", _pos_float),
    FlagSpec("--rate-burst", "rate_limits.burst", _pos_int),
    FlagSpec("--max-streams", "rate_limits.max_streams", _pos_int),
    FlagSpec("--enroll-rate-limit", "rate_limits.anonymous_rate_per_s", _pos_float),
    FlagSpec("--enroll-rate-burst", "rate_limits.anonymous_burst", _pos_int),
    FlagSpec("--discrepancy-pause-value", "risk.discrepancy_pause_value", pause_value),
    FlagSpec("--metrics-listen", "metrics_listen", host_port),
    FlagSpec("--http-listen", "dashboard.http_listen", host_port),
    FlagSpec("--webhook-max-attempts", "webhooks.max_attempts", _pos_int),
    FlagSpec("--webhook-backoff-base", "webhooks.base_backoff_s", _pos_float),
    FlagSpec("--webhook-backoff-cap", "webhooks.max_backoff_s", _pos_float),
    FlagSpec("--webhook-replay-window", "webhooks.replay_window_s", _pos_float),
    FlagSpec("--webhook-timeout", "webhooks.timeout_s", _pos_float),
)
WL_FLAGS = (
    FlagSpec("--wl-id", "wl_id", _wl_id),
    FlagSpec("--pki", "pki_dir", _text),
    FlagSpec("--cp", "cp_target", host_port),
    FlagSpec("--db", "db_url", db_url),
    FlagSpec("--listen", "listen", host_port),
    FlagSpec("--cp-enroll", "cp_enroll_target", host_port),
    FlagSpec("--bootstrap-token", "bootstrap_token", _text),
    FlagSpec("--state-dir", "state_dir", _text),
    FlagSpec("--order-timeout-ms", "order_timeout", _order_timeout),
    FlagSpec("--insecure-dev", "insecure_dev", _bool),
    FlagSpec("--data-key-file", "data_key_file", _path),
    FlagSpec("--contact-grant", "contact_grants", _wl_ids),
    FlagSpec("--pii-retention-days", "pii_retention", _days),
    FlagSpec("--metrics-listen", "metrics_listen", host_port),
)


def _nest(key: str, value: Any) -> dict[str, Any]:
    *tables, last = key.split(".")
    out: dict[str, Any] = {last: value}
    for table in reversed(tables):
        out = {table: out}
    return out


def flag_layer(args: argparse.Namespace, specs: tuple[FlagSpec, ...]) -> dict[str, Any]:
    """The flags that were given (or whose own ``XCWL_<FLAG>`` variable is set), as settings keys."""
    given = [(s, getattr(args, name_of(s.flag), None)) for s in specs]
    return merge(*(_nest(s.key, s.convert(s.flag, v)) for s, v in given if v is not None))


def flag_env_layer(env: Mapping[str, str], specs: tuple[FlagSpec, ...]) -> dict[str, Any]:
    """The flags' own variables (``XCWL_DB`` …) as settings keys, for ``config show`` (no flags there)."""
    given = [(s, env.get(env_name(s.flag))) for s in specs]
    return merge(*(_nest(s.key, s.convert(env_name(s.flag), v)) for s, v in given if v is not None))


def file_and_env(cls: type[Any], config: str | None, prefix: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The ``--config`` file merged under the ``prefix`` variables, each checked naming its source."""
    from_file = load_toml(Path(config)) if config else {}
    check_layer(cls, from_file, f"--config {config}")
    from_env = env_layer(prefix, env)
    check_layer(cls, from_env, f"{prefix}* variables")
    return merge(from_file, from_env)


def layered(cls: type[Any], args: argparse.Namespace, specs: tuple[FlagSpec, ...], prefix: str,
            env: Mapping[str, str]) -> dict[str, Any]:
    """File < ``prefix`` variables < flags (their variables included, through argparse defaults)."""
    return merge(file_and_env(cls, getattr(args, "config", None), prefix, env), flag_layer(args, specs))


def _require(data: Mapping[str, Any], specs: tuple[FlagSpec, ...], keys: tuple[str, ...]) -> None:
    flags = {s.key: s.flag for s in specs}
    for key in keys:
        if data.get(key) in (None, ""):
            flag = flags[key]
            raise CliError(f"{flag} is required ({key} is not set: give {flag}, set {env_name(flag)}, or set "
                           f"{key} in the --config file)")


def _check_common(settings: CpSettings | NodeSettings) -> None:
    db_url("db_url", settings.db_url)
    host_port("listen", settings.listen)


def cp_settings(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> CpSettings:
    """CpSettings of ``xcwl cp serve`` (file, variables, flags); the PKI directory must hold the CA and the CP."""
    data = layered(CpSettings, args, CP_FLAGS, CP_ENV_PREFIX, os.environ if env is None else env)
    _require(data, CP_FLAGS, ("pki_dir", "db_url"))
    settings: CpSettings = build(CpSettings, data)
    _check_common(settings)
    host_port("enroll_listen", settings.enroll_listen)
    if settings.dashboard.http_listen:
        host_port("dashboard.http_listen", settings.dashboard.http_listen)
    max_identity_age(settings.max_identity_age.total_seconds(), "max_identity_age")
    pki = PkiDir(settings.pki_dir)
    for path in (pki.ca_cert, pki.ca_key, pki.cert(Identity.cp()), pki.key(Identity.cp())):
        if not path.exists():
            raise CliError(f"--pki: {path} is missing (create the PKI with 'xcwl pki init --dir {pki.root}')")
    return settings


def node_settings(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> NodeSettings:
    """NodeSettings of ``xcwl wl serve`` (file, variables, flags)."""
    data = layered(NodeSettings, args, WL_FLAGS, WL_ENV_PREFIX, os.environ if env is None else env)
    _require(data, WL_FLAGS, ("wl_id", "pki_dir", "cp_target", "db_url"))
    environ = os.environ if env is None else env
    if environ.get(ENV_VAR) and not data.get("data_keys_json"):
        data = merge(data, {"data_keys_json": environ[ENV_VAR]})  # the keys' JSON, read at the edge only
    data = merge({"migrate_in_child": True}, data)  # a long-lived process: keep Alembic out of its memory
    settings: NodeSettings = build(NodeSettings, data)
    cadence = getattr(args, "cadence", None)
    if cadence:
        try:
            settings = replace(settings, cadence=settings.cadence.with_overrides(list(cadence)))
        except ValueError as err:
            raise CliError(f"--cadence: {err}") from None
    _wl_id("wl_id", settings.wl_id)
    for wl in settings.contact_grants:
        _wl_id("contact_grants", wl)
    _check_common(settings)
    host_port("cp_target", settings.cp_target)
    if settings.cp_enroll_target:
        host_port("cp_enroll_target", settings.cp_enroll_target)
    pki = PkiDir(settings.pki_dir)
    if not settings.insecure_dev and not pki.ca_cert.exists():
        raise CliError(f"--pki: {pki.ca_cert} is missing (copy the CA certificate there)")
    has_cert = pki.has(Identity.wl(settings.wl_id))
    if not settings.insecure_dev and not has_cert and not (settings.bootstrap_token and settings.cp_enroll_target):
        raise CliError(f"no certificate for {settings.wl_id} in {pki.root}: pass --bootstrap-token and --cp-enroll "
                       "for the first start (an operator creates the token with 'xcwl token create')")
    return settings
