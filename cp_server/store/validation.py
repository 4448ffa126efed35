"""Field checks of the CP's registry and policy inputs; each failure names the request field it refers to.

Pure functions (no I/O), so the admin servicer, the CLI and tests share one definition of "valid". Checks that
need the database (known WLs, FX step against the stored rate) live in ``policy_store``.

FX rule (documented in ``docs/cp.md``): every FX rate the CP stores is rounded to ``FX_SIGNIFICANT_DIGITS``
significant digits, half-even. A rate given in the other order than the stored one (wl_b per wl_a, wl_a < wl_b)
is first inverted at ``_INVERT_PRECISION`` digits, then rounded by the same rule.
"""

from __future__ import annotations

import decimal
import ipaddress
import re
from decimal import Decimal

from xwl_runtime import hostnames
from xwl_runtime.errors import InvalidArgument, echo
from xwl_runtime.identity import NAME_RE
from xwl_runtime.text import human_text

FX_SIGNIFICANT_DIGITS = 12
_INVERT_PRECISION = 34
MAX_DECIMAL_CHARS = 64
MAX_NAME_CHARS = 200
MAX_CURRENCY_DECIMALS = 8
MAX_EXPORT_DELAY_S = 30 * 24 * 3600
MAX_REASON_CHARS = 500
MAX_LIMIT = Decimal("1e18")
CURRENCY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$")
_HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def wl_id(field: str, value: str) -> str:
    """A WL id: lower-case letters, digits and '-', at most 63 (``xwl_runtime.identity.NAME_RE``)."""
    if not value:
        raise InvalidArgument.field(field, "required")
    if len(value) > 63:
        raise InvalidArgument.field(field, "at most 63 characters")
    if not NAME_RE.match(value):
        raise InvalidArgument.field(field, "lower-case letters, digits and '-', starting alphanumeric, max 63")
    return value


def text(field: str, value: str, *, max_chars: int = MAX_NAME_CHARS, required: bool = True) -> str:
    """A human text field: bounded, trimmed, non-empty when required, no control or bidi override characters."""
    # Checked before trimming: str.strip() would quietly drop a trailing newline or C1 NEL instead of refusing it.
    value = human_text(field, value, max_chars=max_chars, required=False).strip()
    if required and not value:
        raise InvalidArgument.field(field, "required")
    return value


def currency(field: str, value: str) -> str:
    """A currency code such as ``XPY-A``."""
    if not value:
        raise InvalidArgument.field(field, "required")
    if not CURRENCY_RE.match(value):
        raise InvalidArgument.field(field, "1-16 letters, digits, '.', '_' or '-'")
    return value


def currency_decimals(field: str, value: int) -> int:
    if not 0 <= value <= MAX_CURRENCY_DECIMALS:
        raise InvalidArgument.field(field, f"must be between 0 and {MAX_CURRENCY_DECIMALS}")
    return value


def decimal_value(field: str, value: str, *, positive: bool) -> Decimal:
    """A finite decimal string; > 0 when ``positive``, else >= 0."""
    if not value:
        raise InvalidArgument.field(field, "required")
    if len(value) > MAX_DECIMAL_CHARS:
        raise InvalidArgument.field(field, f"at most {MAX_DECIMAL_CHARS} characters")
    try:
        number = Decimal(value)
    except decimal.InvalidOperation as err:
        raise InvalidArgument.field(field, f"{echo(value)} is not a decimal number") from err
    if not number.is_finite():
        raise InvalidArgument.field(field, "must be finite")
    if positive and number <= 0:
        raise InvalidArgument.field(field, "must be > 0")
    if not positive and number < 0:
        raise InvalidArgument.field(field, "must be >= 0")
    return number


def imbalance_limit(field: str, value: str) -> Decimal:
    limit = decimal_value(field, value, positive=False)
    if limit > MAX_LIMIT:
        raise InvalidArgument.field(field, f"at most {MAX_LIMIT:f}")
    return limit


def round_fx(value: Decimal) -> Decimal:
    """The one FX rounding rule: ``FX_SIGNIFICANT_DIGITS`` significant digits, half-even."""
    ctx = decimal.Context(prec=FX_SIGNIFICANT_DIGITS, rounding=decimal.ROUND_HALF_EVEN)
    return ctx.plus(value)


def invert_fx(value: Decimal) -> Decimal:
    """1 / value, rounded by the FX rule."""
    ctx = decimal.Context(prec=_INVERT_PRECISION, rounding=decimal.ROUND_HALF_EVEN)
    return round_fx(ctx.divide(Decimal(1), value))


def derived_fx(reference_rate_a: Decimal, reference_rate_b: Decimal) -> Decimal:
    """Default FX of a new pair: units of b per unit of a = value of a / value of b in the reference unit."""
    ctx = decimal.Context(prec=_INVERT_PRECISION, rounding=decimal.ROUND_HALF_EVEN)
    return round_fx(ctx.divide(reference_rate_a, reference_rate_b))


def fx_in_bounds(field: str, rate: Decimal, max_fx_rate: Decimal) -> Decimal:
    """Refuse a rate outside [1/max_fx_rate, max_fx_rate]."""
    low = Decimal(1) / max_fx_rate
    if rate < low or rate > max_fx_rate:
        raise InvalidArgument.field(
            field, f"FX rate {fmt(rate)} outside [{fmt(low)}, {fmt(max_fx_rate)}]"
        )
    return rate


def fmt(value: Decimal) -> str:
    """Canonical text of a stored decimal: plain notation, no exponent, no trailing zeros."""
    normalized = value.normalize()
    if normalized == 0:
        return "0"
    return format(normalized, "f")


def endpoint(field: str, value: str) -> str:
    """``host:port`` with a DNS name, IPv4 address or bracketed IPv6 address, and a port 1..65535."""
    if not value:
        raise InvalidArgument.field(field, "required (host:port)")
    if len(value) > 300:
        raise InvalidArgument.field(field, "at most 300 characters")
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise InvalidArgument.field(field, "must be host:port")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidArgument.field(field, "port must be 1..65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as err:
            raise InvalidArgument.field(field, "invalid IPv6 address") from err
        return value
    labels = host.rstrip(".").split(".")
    if not all(_HOST_LABEL_RE.match(label) for label in labels) or len(host) > 253:
        raise InvalidArgument.field(field, "host must be a DNS name, an IPv4 address or [IPv6]")
    return value


def export_delay_s(field: str, seconds: int, nanos: int) -> int:
    """An export delay in whole seconds, 0 to 30 days."""
    if nanos != 0:
        raise InvalidArgument.field(field, "whole seconds only")
    if not 0 <= seconds <= MAX_EXPORT_DELAY_S:
        raise InvalidArgument.field(field, f"must be between 0 and {MAX_EXPORT_DELAY_S} seconds (30 days)")
    return seconds


def reason(field: str, value: str) -> str:
    return text(field, value, max_chars=MAX_REASON_CHARS, required=False)


def dns_names(field: str, values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A WL's endpoint DNS names: RFC 1123 host names, lower-cased, de-duplicated, at most ``MAX_NAMES``.

    Wildcards, IP literals, loopback names and the CA's reserved suffix are refused: a certificate holding them
    would let the WL pose as the CP, another WL or any host.
    """
    if len(values) > hostnames.MAX_NAMES:
        raise InvalidArgument.field(field, f"at most {hostnames.MAX_NAMES} names")
    names = hostnames.normalize([str(v)[: hostnames.MAX_NAME_CHARS + 1] for v in values])
    for index, name in enumerate(names):
        problem = hostnames.hostname_problem(name)
        if problem is not None:
            raise InvalidArgument.field(f"{field}[{index}]", f"{problem}: {name[:32]!r}")
    return names
