"""Typed settings trees from layered sources: a TOML file < ``XCWL_*`` variables < flags.

The settings classes (``CpSettings``, ``NodeSettings`` and the dataclasses nested in them) are the schema: every
field is a key, every nested dataclass a table, so a new field is configurable the day it is added. Values are
checked against the field's type here, at the edge, and a bad one is refused naming its key and its source;
unknown keys are refused too (a typo never silently keeps a default).

Value forms (the same in the file and in variables, where everything is a string):

| type | file | variable |
| --- | --- | --- |
| text, path | ``"..."`` | as is |
| integer | ``42`` | ``42`` |
| number | ``0.5`` or ``2`` | ``0.5`` |
| decimal (money, FX, thresholds) | ``"0.10"`` or ``2`` (never a float: binary fractions are not decimals) | ``0.10`` |
| true/false | ``true`` | ``true``/``false``/``1``/``0``/``yes``/``no`` |
| duration | seconds as a number, or ``"300ms"``, ``"30s"``, ``"5m"``, ``"24h"``, ``"30d"`` | the same |
| list of names | ``["shop", "crm"]`` | ``shop,crm`` |
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .errors import CliError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
SECRET_KEYS = frozenset({"bootstrap_token", "data_keys_json"})
"""Keys whose values ``config show`` never prints."""
REDACTED = "<redacted>"


def load_toml(path: Path) -> dict[str, Any]:
    """The TOML document at ``path``; a one-line error naming the file (and the line) when it cannot be read."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as err:
        raise CliError(f"--config: cannot read {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise CliError(f"--config: {path} is not valid TOML: {err}") from None


def env_layer(prefix: str, env: Mapping[str, str]) -> dict[str, Any]:
    """``{prefix}RISK__ALERT_THRESHOLD=0.7`` → ``{"risk": {"alert_threshold": "0.7"}}`` (``__`` nests)."""
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(prefix) or len(name) == len(prefix):
            continue
        *tables, key = name[len(prefix):].lower().split("__")
        node = out
        for table in tables:
            node = node.setdefault(table, {})
            if not isinstance(node, dict):
                raise CliError(f"{name}: {'.'.join(tables)} is a value, not a table")
        node[key] = value
    return out


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge, later layers winning key by key (a table merges into a table)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


def _fields(cls: type[Any]) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def _is_dataclass_type(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _optional_of(kind: Any) -> Any:
    """``X`` for ``X | None``, else None."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(kind)) == 2:
            return args[0]
    return None


def _bad(key: str, expected: str, value: Any) -> CliError:
    return CliError(f"{key}: expected {expected}, got {str(value)[:40]!r}")


def coerce(kind: Any, value: Any, key: str) -> Any:
    """``value`` (from TOML, a variable or a flag) as a ``kind``; CliError naming ``key`` when it is not one."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
            return value.strip().lower() in _TRUE
        raise _bad(key, "true or false", value)
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        raise _bad(key, "an integer", value)
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                return number
        raise _bad(key, "a number", value)
    if kind is Decimal:
        if isinstance(value, Decimal):
            return value
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                decimal = Decimal(str(value).strip())
            except InvalidOperation:
                decimal = Decimal("NaN")
            if decimal.is_finite():
                return decimal
        raise _bad(key, 'a decimal written as a string like "0.10" (or an integer)', value)
    if kind is dt.timedelta:
        return _duration(value, key)
    if kind is str:
        if isinstance(value, str):
            return value
        raise _bad(key, "a string", value)
    if kind is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value)
        raise _bad(key, "a path", value)
    if typing.get_origin(kind) is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            (item, _) = typing.get_args(kind)
            return tuple(coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
        raise _bad(key, "a list", value)
    if _optional_of(kind) is not None:  # unset stays None (the default); a given value is of the inner type
        return coerce(_optional_of(kind), value, key)
    if _is_dataclass_type(kind):
        if isinstance(value, kind):
            return value
        if isinstance(value, Mapping):
            return build(kind, value, prefix=f"{key}.")
        raise _bad(key, f"a table of {kind.__name__} settings", value)
    raise CliError(f"{key}: its type {kind!r} has no configuration form")


def _duration(value: Any, key: str) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise _bad(key, 'a duration: seconds, or "300ms", "30s", "5m", "24h", "30d"', value)
    return dt.timedelta(seconds=seconds)


def typed_fields(cls: type[Any], data: Mapping[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """The keys of ``data`` checked against ``cls``'s fields and converted; unknown keys refused by name."""
    fields = _fields(cls)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise CliError(f"{prefix}{key}: unknown setting (known here: {known})")
        out[key] = coerce(fields[key][1], value, prefix + key)
    return out


def check_layer(cls: type[Any], data: Mapping[str, Any], source: str, *, prefix: str = "") -> None:
    """Refuse an unknown key or a bad value of one source (``source`` is named in the error) before merging, so
    the message says where the value came from. Cross-field rules run later, on the merged tree."""
    fields = _fields(cls)
    for key, value in data.items():
        kind = fields[key][1] if key in fields else None
        try:
            if kind is None:
                typed_fields(cls, {key: value}, prefix=prefix)
            elif _is_dataclass_type(kind) and isinstance(value, Mapping):
                check_layer(kind, value, source, prefix=f"{prefix}{key}.")
            else:
                coerce(kind, value, prefix + key)
        except CliError as err:
            if err.message.startswith(source):
                raise
            raise CliError(f"{source}: {err.message}") from None


def build(cls: type[Any], data: Mapping[str, Any], *, prefix: str = "") -> Any:
    """An instance of the settings dataclass ``cls`` from ``data``; missing fields keep their defaults."""
    values = typed_fields(cls, data, prefix=prefix)
    missing = [name for name, (f, _) in _fields(cls).items() if name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise CliError(f"{prefix}{missing[0]}: required setting is not set")
    try:
        return cls(**values)
    except ValueError as err:
        raise CliError(f"{prefix.rstrip('.') or cls.__name__}: {err}") from None


def plain(value: Any, *, key: str = "") -> Any:
    """A settings object as plain TOML/JSON-ready data: durations in seconds, decimals and paths as strings,
    secrets redacted."""
    if _is_dataclass_type(type(value)):
        return {f.name: plain(getattr(value, f.name), key=f.name) for f in dataclasses.fields(value)}
    if key in SECRET_KEYS:
        return REDACTED if value else ""
    if key == "db_url" and isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (Decimal, Path)):
        return str(value)
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value


def redact_url(url: str) -> str:
    """A database URL with its password replaced (``postgresql://user:<redacted>@host/db``)."""
    return re.sub(r"^([a-z0-9+]+://[^:/@]*):[^@]*@", rf"\1:{REDACTED}@", url)


def to_toml(data: Mapping[str, Any], *, table: str = "") -> str:
    """Plain data (from ``plain``) as TOML: scalars first, then one ``[table]`` per nested mapping."""
    lines: list[str] = []
    nested: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            nested.append((f"{table}.{key}" if table else key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    out = "\n".join(lines)
    for name, sub in nested:
        out += f"\n\n[{name}]\n" + to_toml(sub, table=name)
    return out.strip("\n")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
