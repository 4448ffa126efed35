"""How signals print their compensation plan (``xcwl signal list``, ``xcwl report balance``, the demo)."""

from __future__ import annotations

from xcwl.render_trade import signal_text, signals_table
from xporty.cp.v1 import signal_pb2


def _disable(*offers: signal_pb2.CompensationOffer) -> signal_pb2.Signal:
    s = signal_pb2.Signal(sequence=7, kind=signal_pb2.SIGNAL_KIND_DISABLE, source=signal_pb2.SIGNAL_SOURCE_AUTOMATIC,
                          exporter_wl="wl-a", importer_wl="wl-c", reason="imbalance utilisation 1.02 above 1.00")
    s.plan.required_reference_value = "210.00"
    s.plan.offers.extend(offers)
    return s


AMP = signal_pb2.CompensationOffer(offer_id="amp", title="Amplifier", reference_value="150.00",
                                   unit_reference_value="150.00", available_stock=1, cover_quantity=1,
                                   exporter_wl="wl-c", importer_wl="wl-a",
                                   unit_price={"currency": "XPY-C", "amount": "300.00"})
MUG = signal_pb2.CompensationOffer(offer_id="mug", title="Mug", reference_value="140.00", unit_reference_value="3.50",
                                   available_stock=40, cover_quantity=18, exporter_wl="wl-c", importer_wl="wl-a",
                                   unit_price={"currency": "XPY-C", "amount": "7.00"})


def test_signal_text_lists_the_plan_offers_ranked() -> None:
    text = signal_text(_disable(AMP, MUG))
    lines = text.splitlines()
    assert lines[0].startswith("signal #7 DISABLE wl-a -> wl-c (AUTOMATIC)")
    assert "wl-c must export 210.00 (reference unit)" in lines[0]
    assert lines[1].split()[:4] == ["rank", "exporter", "offer", "title"]
    assert lines[3].split()[:5] == ["1", "wl-c", "->", "wl-a", "amp"]
    assert "300.00 XPY-C" in lines[3] and lines[3].split()[-1] == "1"
    assert lines[4].split()[:5] == ["2", "wl-c", "->", "wl-a", "mug"] and lines[4].split()[-1] == "18"


def test_a_plan_without_offers_says_why() -> None:
    assert "(no recent offer digest from wl-c for wl-a)" in signal_text(_disable())


def test_signals_table_appends_each_plan() -> None:
    enable = signal_pb2.Signal(sequence=8, kind=signal_pb2.SIGNAL_KIND_ENABLE, exporter_wl="wl-a", importer_wl="wl-c")
    text = signals_table([enable, _disable(AMP)])
    table, plan = text.split("\n\n")
    assert table.splitlines()[0].split()[-1] == "plan_offers"
    assert table.splitlines()[3].split()[-1] == "1"  # the DISABLE row: one plan offer
    assert plan.splitlines()[0] == "compensation plan of signal #7:"
    assert plan.splitlines()[3].split()[4] == "amp"
