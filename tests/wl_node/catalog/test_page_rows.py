"""The importer's per-page fast paths give exactly what xwl_runtime.money and json give, for any input."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from wl_node.catalog.snapshot import PagePricer, json_list
from wl_node.catalog.visibility import ImportTerms
from xwl_runtime.money import MoneyError, convert_for_importer, parse_price


def _terms(source_decimals: int, decimals: int, rate: Decimal, forward: bool) -> ImportTerms:
    return ImportTerms(exporter_wl="wl-x", endpoint="127.0.0.1:1", source_currency="SRC",
                       source_decimals=source_decimals, currency="DST", decimals=decimals, fx_rate=rate,
                       fx_rate_text=f"{rate:f}", fx_version=1, exporter_is_wl_a=forward)


def _reference(text: str, terms: ImportTerms) -> tuple[str, str] | None:
    try:
        source = parse_price(text, terms.source_decimals)
    except MoneyError:
        return None
    converted = convert_for_importer(source, fx_rate=terms.fx_rate, exporter_is_wl_a=terms.exporter_is_wl_a,
                                     importer_decimals=terms.decimals)
    return f"{source:f}", f"{converted:f}"


@st.composite
def price_texts(draw: st.DrawFn) -> str:
    """Mostly well-formed prices (leading zeros, trailing zeros, many digits), plus arbitrary text."""
    if draw(st.booleans()):
        return draw(st.text(alphabet="0123456789.-+eE _٣", max_size=40))
    zeros = "0" * draw(st.integers(0, 3))
    whole = str(draw(st.integers(0, 10**33)))
    frac = draw(st.text(alphabet="0123456789", min_size=0, max_size=10))
    return f"{zeros}{whole}.{frac}" if frac or draw(st.booleans()) else f"{zeros}{whole}"


rates = st.builds(lambda units, places: Decimal(units).scaleb(-places),
                  st.integers(1, 10**14), st.integers(0, 14))


@settings(max_examples=400, deadline=None)
@given(text=price_texts(), source_decimals=st.integers(0, 8), decimals=st.integers(0, 8), rate=rates,
       forward=st.booleans())
@example(text="0012.50", source_decimals=2, decimals=2, rate=Decimal("3"), forward=False)
@example(text="0.005", source_decimals=3, decimals=2, rate=Decimal("1"), forward=False)  # a tie: half to even
@example(text="0.015", source_decimals=3, decimals=2, rate=Decimal("1"), forward=False)
@example(text="1" * 31, source_decimals=0, decimals=0, rate=Decimal("1"), forward=True)  # too many digits
@example(text="0.00", source_decimals=2, decimals=2, rate=Decimal("1"), forward=True)  # not > 0
@example(text="1.", source_decimals=2, decimals=2, rate=Decimal("1"), forward=True)
def test_pricer_matches_the_money_module(text: str, source_decimals: int, decimals: int, rate: Decimal,
                                         forward: bool) -> None:
    terms = _terms(source_decimals, decimals, rate, forward)
    pricer = PagePricer(terms)
    expected = _reference(text, terms)
    assert pricer(text) == expected
    assert pricer(text) == expected  # the memoized answer too


@given(st.lists(st.text(max_size=30), max_size=4))
@example(["https://img.example.com/a.jpg"])
@example(['quote " and \\ back\x01slash'])
@example([])
def test_json_list_matches_json_dumps(items: list[str]) -> None:
    assert json_list(items) == json.dumps(items, ensure_ascii=False, separators=(",", ":"))
