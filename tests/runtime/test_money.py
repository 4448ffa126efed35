"""Money parsing and the one FX rounding rule, checked exactly against a fractions.Fraction reference."""

from __future__ import annotations

import decimal
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xwl_runtime.money import (
    MoneyError,
    canonical,
    convert,
    convert_for_importer,
    convert_inverse,
    format_amount,
    parse_amount,
    parse_canonical_amount,
    parse_price,
    parse_rate,
    round_to,
)

decimals_st = st.integers(min_value=0, max_value=8)


@st.composite
def amounts(draw: st.DrawFn, max_decimals: int = 8, positive: bool = True) -> Decimal:
    places = draw(st.integers(min_value=0, max_value=max_decimals))
    low = 1 if positive else -(10**14)
    units = draw(st.integers(min_value=low, max_value=10**14))
    return Decimal(units).scaleb(-places)


@st.composite
def rates(draw: st.DrawFn) -> Decimal:
    places = draw(st.integers(min_value=0, max_value=12))
    units = draw(st.integers(min_value=1, max_value=10**10))
    return Decimal(units).scaleb(-places)


def ref_round_half_even(value: Fraction, decimals: int) -> Fraction:
    """Reference rounding on rationals: nearest multiple of 10^-d, ties to the even multiple."""
    scaled = value * 10**decimals
    floor = scaled.numerator // scaled.denominator
    diff = scaled - floor
    if diff > Fraction(1, 2) or (diff == Fraction(1, 2) and floor % 2 == 1):
        floor += 1
    return Fraction(floor, 10**decimals)


@given(amounts(positive=False), rates(), decimals_st)
def test_convert_is_exact_half_even_of_the_exact_product(amount: Decimal, rate: Decimal, d: int) -> None:
    got = convert(amount, rate, d)
    assert Fraction(got) == ref_round_half_even(Fraction(amount) * Fraction(rate), d)
    assert -got.as_tuple().exponent == d  # always exactly d decimals


@given(amounts(), rates(), decimals_st)
def test_inverse_is_exact_half_even_of_amount_over_rate(amount: Decimal, rate: Decimal, d: int) -> None:
    got = convert_inverse(amount, rate, d)
    assert Fraction(got) == ref_round_half_even(Fraction(amount) / Fraction(rate), d)
    assert -got.as_tuple().exponent == d


@given(amounts(), rates(), decimals_st)
def test_result_does_not_depend_on_the_ambient_context(amount: Decimal, rate: Decimal, d: int) -> None:
    expected = convert(amount, rate, d), convert_inverse(amount, rate, d)
    with decimal.localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = decimal.ROUND_UP
        assert (convert(amount, rate, d), convert_inverse(amount, rate, d)) == expected


@given(amounts(), decimals_st)
def test_quantize_is_idempotent(amount: Decimal, d: int) -> None:
    once = round_to(amount, d)
    assert round_to(once, d) == once
    assert convert(once, Decimal(1), d) == once
    assert convert_inverse(once, Decimal(1), d) == once


@given(amounts(), amounts(), rates(), decimals_st)
def test_conversion_is_monotonic(x: Decimal, y: Decimal, rate: Decimal, d: int) -> None:
    lo, hi = sorted((x, y))
    assert convert(lo, rate, d) <= convert(hi, rate, d)
    assert convert_inverse(lo, rate, d) <= convert_inverse(hi, rate, d)


def test_ties_go_to_even() -> None:
    assert convert(Decimal("0.125"), Decimal("1"), 2) == Decimal("0.12")
    assert convert(Decimal("0.135"), Decimal("1"), 2) == Decimal("0.14")
    assert convert(Decimal("2.5"), Decimal("1"), 0) == Decimal("2")
    assert convert_inverse(Decimal("1"), Decimal("8"), 2) == Decimal("0.12")  # 0.125 → 0.12
    assert convert_inverse(Decimal("3"), Decimal("8"), 2) == Decimal("0.38")  # 0.375 → 0.38
    assert convert_inverse(Decimal("1"), Decimal("3"), 2) == Decimal("0.33")


def test_importer_direction_picks_rate_or_derived_inverse() -> None:
    # wl_a → wl_b: multiply; wl_b → wl_a: divide by the same rate (its inverse is derived, not stored).
    assert convert_for_importer(Decimal("10.00"), fx_rate=Decimal("2.5"), exporter_is_wl_a=True,
                                importer_decimals=2) == Decimal("25.00")
    assert convert_for_importer(Decimal("10.00"), fx_rate=Decimal("2.5"), exporter_is_wl_a=False,
                                importer_decimals=2) == Decimal("4.00")


@pytest.mark.parametrize("text", ["", "1e3", "NaN", "Infinity", " 1", "1.", ".5", "1,5", "+1", "0x10", "1" * 31,
                                  "1\u0663", "\u0661.50", "12\n", "1.5\n"])
def test_malformed_amounts_are_refused(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text, 2)


def test_amount_decimals_price_and_rate_rules() -> None:
    assert parse_amount("12.50", 2) == Decimal("12.50")
    with pytest.raises(MoneyError, match="decimals"):
        parse_amount("12.505", 2)
    with pytest.raises(MoneyError, match="decimals"):
        parse_amount("1.0", 0)
    with pytest.raises(MoneyError, match="greater than 0"):
        parse_price("0.00", 2)
    with pytest.raises(MoneyError, match="greater than 0"):
        parse_price("-1", 2)
    with pytest.raises(MoneyError):
        parse_rate("0")
    assert parse_rate("0.000001") == Decimal("0.000001")


def test_formatting_is_fixed_point() -> None:
    assert format_amount(Decimal("12.5"), 2) == "12.50"
    assert format_amount(Decimal("1E+3"), 0) == "1000"
    assert canonical(Decimal("1.2500")) == "1.25"
    assert canonical(Decimal("100")) == "100"


def test_operands_beyond_the_fast_context_are_still_exact() -> None:
    amount = Decimal("123456789012345678901234567890.12345678")
    rate = Decimal("98765432109876543210987654321098765432109876543210.123456789012345678901234567891")
    got = convert(amount, rate, 8)
    assert Fraction(got) == ref_round_half_even(Fraction(amount) * Fraction(rate), 8)
    assert Fraction(convert_inverse(amount, rate, 8)) == ref_round_half_even(Fraction(amount) / Fraction(rate), 8)


@given(d=st.integers(0, 8), units=st.integers(1, 10**12), quantity=st.integers(1, 10**6))
def test_every_total_a_node_writes_is_canonical(d: int, units: int, quantity: int) -> None:
    """The exporter's order total is ``format(price × quantity, "f")`` of a price that passed ``parse_price``:
    the CP's event rule accepts every such total, and reads back the same value."""
    price = parse_price(format(Decimal(units).scaleb(-d), "f"), d)
    total = format(price * quantity, "f")
    assert parse_canonical_amount(total, d) == price * quantity


@pytest.mark.parametrize("text", ["1e5", "1E+2", "1.001", "40.000", "+5", "-5", "007", "00.5", " 5", "5 ", "NaN",
                                  "Infinity", "0", "0.00", ".5", "5.", "1_000", "٣", "1٣", "5\n", "1" * 31])
def test_non_canonical_amounts_are_refused(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_canonical_amount(text, 2)
