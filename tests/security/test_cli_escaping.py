"""The CLI shows untrusted text (titles, WL names, reasons, a node's error note, server messages) as visible escapes:
a terminal never receives an escape sequence, a C0/C1 control or a bidi override from another party."""

from __future__ import annotations

import re

import pytest

from xcwl import cli
from xcwl.output import emit, key_values, printable, table
from xcwl.render import node_status_table, wls_table
from xcwl.render_trade import imported_offers_table
from xporty.cp.v1 import admin_service_pb2, registry_pb2
from xporty.node.v1 import storefront_pb2

HOSTILE = "Shop\x1b[2J\x1b]0;owned\x07\x00\x7f\x85\x9b\u202etxt.exe\u2066\u2069\u200b\r\tend"
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def _assert_safe(text: str, *, lines: int | None = None) -> None:
    assert UNSAFE.search(text) is None, repr(text)
    if lines is not None:
        assert text.count("\n") == lines - 1


def test_printable_escapes_every_class_visibly() -> None:
    shown = printable(HOSTILE)
    _assert_safe(shown, lines=1)
    for visible in ("\\x1b[2J", "\\x00", "\\x7f", "\\x85", "\\x9b", "\\u202e", "\\u2066", "\\u200b", "\\r", "\\t"):
        assert visible in shown
    assert printable("Mercado São Paulo — 100%") == "Mercado São Paulo — 100%"  # printable text untouched
    assert printable("a\nb", keep_newlines=True) == "a\nb"
    assert printable("a\nb") == "a\\nb"


def test_tables_and_renderings_escape_untrusted_cells() -> None:
    wls = wls_table([registry_pb2.WhiteLabel(wl_id="wl-x", name=HOSTILE, currency="XPY-X")])
    _assert_safe(wls, lines=3)
    nodes = node_status_table([admin_service_pb2.NodeStatus(wl_id="wl-x", rejected_version=3, last_error=HOSTILE)])
    _assert_safe(nodes, lines=3)
    offers = imported_offers_table([storefront_pb2.ImportedOffer(imported_offer_id="wl-x:o", title=HOSTILE)])
    _assert_safe(offers, lines=3)
    _assert_safe(table(["a"], [[HOSTILE]]), lines=3)
    _assert_safe(key_values({"reason": HOSTILE}), lines=1)


def test_emit_and_errors_escape(capsys: pytest.CaptureFixture[str]) -> None:
    emit(False, {}, f"first line\nsecond {HOSTILE}")
    out = capsys.readouterr().out
    _assert_safe(out, lines=3)  # two lines of the rendering plus print's newline
    emit(True, {"title": HOSTILE}, "")
    _assert_safe(capsys.readouterr().out)

    # An error line carries text from elsewhere (here the path given; for RPCs, the server's message).
    code = cli.main(["cp", "serve", "--pki", "/nonexistent/\x1b[2J\u202eevil\x85", "--db", "sqlite:///x.db"])
    assert code != 0
    err = capsys.readouterr().err
    assert "\\x1b[2J\\u202eevil\\x85" in err
    _assert_safe(err, lines=2)
