"""The pure rules: order accounting and the threshold state machine (hysteresis, deficit direction)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cp_server.risk.ledger import EventKind, OrderState, apply
from cp_server.risk.thresholds import Action, ActionKind, Level, PairLevel, compensation_required, evaluate
from cp_server.settings.risk import RiskSettings

S = RiskSettings()
L = Decimal(1000)


def _run(nets: list[int]) -> list[list[Action]]:
    state, out = PairLevel(), []
    for net in nets:
        state, actions = evaluate(state, wl_a="a", wl_b="b", net=Decimal(net), limit=L, settings=S)
        out.append(actions)
    return out


def test_one_alert_one_disable_while_hovering_then_reenable() -> None:
    steps = _run([700, 800, 790, 810, 1000, 1001, 950, 1100, 700, 610, 599, 790, 800])
    flat = [a for step in steps for a in step]
    assert flat == [
        Action(ActionKind.RAISE_ALERT),                                   # 800: >= 80%
        Action(ActionKind.DISABLE, "a"), Action(ActionKind.ESCALATE_ALERT),  # 1001: > 100%
        Action(ActionKind.ENABLE, "a"), Action(ActionKind.CLOSE_ALERT),     # 599: < 60%
        Action(ActionKind.RAISE_ALERT),                                   # 800 again: a new episode
    ]
    assert steps[4] == []  # exactly 100% is not above the limit


def test_negative_net_disables_b_to_a_and_zero_limit_admits_nothing() -> None:
    assert _run([-1200])[0] == [Action(ActionKind.RAISE_ALERT), Action(ActionKind.DISABLE, "b"),
                                Action(ActionKind.ESCALATE_ALERT)]
    state, actions = evaluate(PairLevel(), wl_a="a", wl_b="b", net=Decimal("0.01"), limit=Decimal(0), settings=S)
    assert state == PairLevel(Level.DISABLED, "a") and ActionKind.DISABLE in {x.kind for x in actions}


def test_compensation_brings_back_to_the_alert_level() -> None:
    assert compensation_required(Decimal("1234.5"), L, S) == Decimal("434.5")
    assert compensation_required(Decimal("-1100"), L, S) == Decimal("300")


@given(st.lists(st.integers(-3000, 3000), max_size=60))
def test_no_flapping_every_disable_is_separated_by_a_recovery(nets: list[int]) -> None:
    """Between two DISABLEs of one direction, utilisation went below the re-enable level (or the side flipped)."""
    state = PairLevel()
    for net in nets:
        before = state
        state, actions = evaluate(state, wl_a="a", wl_b="b", net=Decimal(net), limit=L, settings=S)
        kinds = [a.kind for a in actions]
        if ActionKind.DISABLE in kinds:
            assert before.disabled_exporter != next(a.exporter_wl for a in actions if a.kind is ActionKind.DISABLE)
        assert kinds.count(ActionKind.RAISE_ALERT) <= 1
        assert (state.level is Level.DISABLED) == (state.disabled_exporter is not None)


def test_order_rules_both_sides_agree_or_grace_and_cancel_wins() -> None:
    E, F, C, X, G = (EventKind.EXPORT_CONFIRMED, EventKind.IMPORT_FINALIZED, EventKind.ORDER_CANCELLED,
                     EventKind.COMPENSATION, EventKind.GRACE_EXPIRED)
    o = OrderState("o", "a", "b")
    confirmed = apply(o, E, "e1", Decimal(5), Decimal("2.50"), 2)
    assert confirmed.delta == 0  # the importer has not agreed yet
    assert apply(confirmed.state, E, "e2", Decimal(7), Decimal("2.50"), 2).duplicate
    agreed = apply(confirmed.state, F, "f1", None, Decimal("2.5"), 2)  # the same amount, written differently
    assert agreed.delta == 5 and agreed.state.agreement == "AGREED"
    cancelled = apply(agreed.state, C, "e3", None)
    assert cancelled.delta == -5
    assert apply(cancelled.state, X, "e4", None).delta == 0
    # The importer's compensation alone reverses nothing for good: the exporter's side counts after the grace.
    compensated = apply(agreed.state, X, "x1", None)
    assert compensated.delta == -5 and apply(compensated.state, G, "g", None).delta == 5
    # A finalization that disagrees: nothing until the grace period ends, then the exporter's side.
    mismatch = apply(confirmed.state, F, "f2", None, Decimal("2.40"), 2)
    assert mismatch.delta == 0 and mismatch.state.agreement == "MISMATCH"
    assert apply(mismatch.state, G, "g", None).delta == 5
    assert apply(apply(confirmed.state, F, "f3", None, Decimal("2.50"), 3).state, G, "g", None).delta == 5
    # A cancellation that overtakes the confirmation still wins; the grace marker does not revive it.
    early = apply(o, C, "e5", None)
    late = apply(early.state, E, "e6", Decimal(5), Decimal("2.50"), 2)
    assert late.delta == 0 and apply(late.state, G, "g", None).delta == 0
