"""Money and FX: decimal amounts (never float) and the one conversion rule of the system.

Amounts travel as decimal strings (``xporty.common.v1.Money.amount``) and live as ``decimal.Decimal``. Each WL
currency allows a fixed number of decimals (0..8, from the WL registry); an amount with more decimals is refused,
never rounded silently.

FX (set only at the CP, one rate per pair): ``fx_rate`` = units of wl_b's currency per one unit of wl_a's currency,
with wl_a < wl_b. The inverse is *derived*, never a second number: ``1 / fx_rate`` as an exact rational.

The conversion rule (documented in docs/catalog.md)::

    wl_a → wl_b  (importer is wl_b):  price_b = round_half_even(amount_a × fx_rate,        decimals_b)
    wl_b → wl_a  (importer is wl_a):  price_a = round_half_even(amount_b × (1 / fx_rate),  decimals_a)
                                              = round_half_even(amount_b / fx_rate,        decimals_a)

The product or quotient is computed exactly (a Decimal product in a local context wide enough that it cannot be
inexact; the quotient as an exact integer division) and rounded exactly once, half to even, to the target
currency's decimals. No intermediate rounding, no dependence on the ambient decimal context.
"""

from __future__ import annotations

import decimal
import functools
import re
from decimal import ROUND_HALF_EVEN, Decimal

from .errors import echo

MAX_CURRENCY_DECIMALS = 8
MAX_AMOUNT_DIGITS = 30
"""Integer digits allowed in an amount: far above any real price, low enough to keep arithmetic cheap."""

_AMOUNT_RE = re.compile(r"^(?P<sign>-?)(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?\Z")  # ASCII digits; no trailing newline


class MoneyError(ValueError):
    """An amount or rate that is not acceptable; the message says why (callers name the field)."""


def parse_decimal(text: str) -> Decimal:
    """A plain decimal string (``"12"``, ``"-0.50"``) as Decimal; no exponent, NaN, infinity or spaces."""
    match = _AMOUNT_RE.match(text)
    if match is None:
        raise MoneyError(f"{echo(text)} is not a decimal number like 12.50")
    if len(match.group("int").lstrip("0")) > MAX_AMOUNT_DIGITS:
        raise MoneyError(f"{echo(text)} has more than {MAX_AMOUNT_DIGITS} integer digits")
    return Decimal(text)


def decimals_of(value: Decimal) -> int:
    """Number of decimals written (``Decimal("1.50")`` → 2)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), "finite decimals only"
    return max(0, -exponent)


def parse_amount(text: str, currency_decimals: int) -> Decimal:
    """An amount with at most ``currency_decimals`` decimals (trailing zeros count: ``"1.50"`` has two)."""
    value = parse_decimal(text)
    if decimals_of(value) > currency_decimals:
        raise MoneyError(f"{echo(text)} has more than {currency_decimals} decimals")
    return value


def parse_price(text: str, currency_decimals: int) -> Decimal:
    """A unit price: an amount > 0."""
    value = parse_amount(text, currency_decimals)
    if value <= 0:
        raise MoneyError(f"{echo(text)} must be greater than 0")
    return value


_CANONICAL_RE = re.compile(r"^(?:0|[1-9][0-9]*)(?:\.[0-9]+)?\Z")  # ASCII digits only (\d matches any script)


def parse_canonical_amount(text: str, currency_decimals: int) -> Decimal:
    """An amount as it must travel between parties (ledger events, orders): a price-like amount (> 0, at most
    ``currency_decimals`` decimals, at most ``MAX_AMOUNT_DIGITS`` integer digits) written plainly: no sign, no
    exponent, no leading zeros, no spaces. Every total a node computes (``price × quantity`` formatted with
    ``format(value, "f")``) passes; ``1e5``, ``+5``, ``007``, ``1.001`` (2 decimals) do not."""
    if _CANONICAL_RE.match(text) is None:
        raise MoneyError(f"{text[:32]!r} is not a plain decimal like 12.50")
    return parse_price(text, currency_decimals)


def parse_rate(text: str) -> Decimal:
    """An FX rate: a plain decimal > 0."""
    value = parse_decimal(text)
    if value <= 0:
        raise MoneyError(f"FX rate {echo(text)} must be greater than 0")
    return value


def quantum(decimals: int) -> Decimal:
    """``Decimal("1E-<decimals>")``: the smallest unit of a currency with that many decimals."""
    if not 0 <= decimals <= MAX_CURRENCY_DECIMALS:
        raise MoneyError(f"currency decimals must be 0..{MAX_CURRENCY_DECIMALS}, got {decimals}")
    return _QUANTA[decimals]


# Built from tuples: exact, no context involved.
_QUANTA = tuple(Decimal((0, (1,), -d)) for d in range(MAX_CURRENCY_DECIMALS + 1))


@functools.lru_cache(maxsize=64)
def _context(prec: int, exact: bool) -> decimal.Context:
    ctx = decimal.Context(prec=prec, rounding=ROUND_HALF_EVEN, Emax=999_999, Emin=-999_999)
    ctx.traps[decimal.Inexact] = exact  # in an exact context, any rounding raises instead of passing silently
    ctx.traps[decimal.Rounded] = False
    return ctx


def _wide_context(*operands: Decimal, exact: bool = True) -> decimal.Context:
    """A context with enough digits for the exact product of the operands plus the quantize target."""
    digits = sum(len(op.as_tuple().digits) for op in operands) + MAX_CURRENCY_DECIMALS + 4
    return _context(max(32, -(-digits // 32) * 32), exact)  # rounded up to a multiple of 32: few cached contexts


# Fast path: wide enough for every realistic amount and rate. An operation it cannot do exactly signals (Inexact or
# InvalidOperation) and is redone in a context sized for its operands, so the fast path never changes a result.
_FAST_EXACT = _context(96, True)
_FAST_ROUND = _context(96, False)


def round_to(value: Decimal, decimals: int) -> Decimal:
    """``value`` rounded half to even to ``decimals`` decimals (exact: done in a wide local context)."""
    # quantize is the one intended rounding, so these contexts do not trap Inexact.
    q = quantum(decimals)
    try:
        return value.quantize(q, rounding=ROUND_HALF_EVEN, context=_FAST_ROUND)
    except decimal.InvalidOperation:  # more digits than the fast context holds
        return value.quantize(q, rounding=ROUND_HALF_EVEN, context=_wide_context(value, exact=False))


def convert(amount: Decimal, rate: Decimal, target_decimals: int) -> Decimal:
    """``amount × rate``, computed exactly, rounded once half to even to ``target_decimals`` decimals."""
    try:
        product = _FAST_EXACT.multiply(amount, rate)
    except decimal.Inexact:
        product = _wide_context(amount, rate).multiply(amount, rate)  # exact: wide enough, Inexact would raise
    return round_to(product, target_decimals)


def convert_inverse(amount: Decimal, rate: Decimal, target_decimals: int) -> Decimal:
    """``amount × (1 / rate)`` = ``amount / rate``, computed exactly, rounded once half to even.

    The quotient of two decimals need not be a finite decimal (1 / 3), so it is done on integers:
    amount = a·10^ea, rate = r·10^er  ⇒  amount / rate · 10^d = a·10^(ea-er+d) / r, then one half-even division.
    """
    if rate <= 0:
        raise MoneyError("FX rate must be greater than 0")
    q = quantum(target_decimals)  # validates target_decimals
    a_sign, a_digits, a_exp = amount.as_tuple()
    _, r_digits, r_exp = rate.as_tuple()
    assert isinstance(a_exp, int) and isinstance(r_exp, int), "finite decimals only"
    a = int("".join(map(str, a_digits)) or "0")
    r = int("".join(map(str, r_digits)))
    shift = a_exp - r_exp + target_decimals
    num, den = (a * 10**shift, r) if shift >= 0 else (a, r * 10**-shift)
    quotient, remainder = divmod(num, den)
    twice = 2 * remainder
    if twice > den or (twice == den and quotient % 2 == 1):
        quotient += 1
    # Built from a tuple: exact, whatever the ambient context's precision or rounding.
    result = Decimal((a_sign if quotient else 0, tuple(int(c) for c in str(quotient)), -target_decimals))
    assert result.as_tuple().exponent == q.as_tuple().exponent
    return result


def convert_for_importer(
    amount: Decimal, *, fx_rate: Decimal, exporter_is_wl_a: bool, importer_decimals: int
) -> Decimal:
    """An exporter's amount in the importer's currency under the pair's ``fx_rate`` (wl_b per wl_a)."""
    if exporter_is_wl_a:
        return convert(amount, fx_rate, importer_decimals)
    return convert_inverse(amount, fx_rate, importer_decimals)


def format_amount(value: Decimal, decimals: int) -> str:
    """Fixed-point string with exactly ``decimals`` decimals (``12.5``, 2 → ``"12.50"``); never exponent form."""
    return f"{round_to(value, decimals):f}"


def canonical(value: Decimal) -> str:
    """Shortest plain string of ``value`` (``Decimal("1.2500")`` → ``"1.25"``), for rates and display."""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
