"""Pure field checks and the one FX rounding rule."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cp_server.store import validation as v
from xwl_runtime.errors import InvalidArgument


def test_fx_rounding_rule() -> None:
    assert v.round_fx(Decimal("1.23456789012345")) == Decimal("1.23456789012")
    assert v.round_fx(Decimal("0.0000123456789012345")) == Decimal("0.0000123456789012")
    assert v.round_fx(Decimal("2.50000000000050")) == Decimal("2.50000000000")  # half-even
    assert v.invert_fx(Decimal(3)) == Decimal("0.333333333333")
    assert v.invert_fx(Decimal("0.25")) == Decimal(4)
    assert v.derived_fx(Decimal(2), Decimal("0.5")) == Decimal(4)


@given(st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1000000"), allow_nan=False,
                   allow_infinity=False, places=6))
def test_inverting_twice_stays_within_rounding(rate: Decimal) -> None:
    if rate <= 0:
        return
    back = v.invert_fx(v.invert_fx(rate))
    assert abs(back - rate) / rate <= Decimal("1e-11")
    assert len(v.round_fx(rate).as_tuple().digits) <= v.FX_SIGNIFICANT_DIGITS


def test_fmt_is_plain_and_normalized() -> None:
    assert v.fmt(Decimal("1E+3")) == "1000"
    assert v.fmt(Decimal("2.50")) == "2.5"
    assert v.fmt(Decimal("0.000")) == "0"
    assert v.fmt(Decimal("1E-7")) == "0.0000001"


@pytest.mark.parametrize("endpoint", ["node-a.example.com:7500", "127.0.0.1:1", "[::1]:65535", "localhost:80"])
def test_good_endpoints(endpoint: str) -> None:
    assert v.endpoint("e", endpoint) == endpoint


@pytest.mark.parametrize("endpoint", ["", "host", ":80", "host:", "host:0", "host:70000", "-bad.com:1",
                                      "a b:1", "[zz]:1", "host:8o"])
def test_bad_endpoints(endpoint: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        v.endpoint("trader_endpoint", endpoint)
    assert err.value.metadata["field"] == "trader_endpoint"


def test_fx_bounds() -> None:
    top = Decimal(1000000)
    assert v.fx_in_bounds("fx_rate", Decimal("0.000001"), top) == Decimal("0.000001")
    for bad in (Decimal("0.0000009"), Decimal("1000000.1")):
        with pytest.raises(InvalidArgument):
            v.fx_in_bounds("fx_rate", bad, top)
