"""The threshold state machine of one pair (pure): OK → ALERT → DISABLED → OK, with hysteresis.

Utilisation ``u = |net_delta| / limit``. With the defaults (alert 0.80, disable 1.00, re-enable 0.60):

* OK and ``u ≥ 0.80``             → raise one ALERT (the episode starts).
* not DISABLED and ``u > 1.00``   → DISABLE the deficit direction (with a compensation plan); the alert escalates.
* DISABLED, ``u > 1.00`` and the deficit direction flipped → ENABLE the old direction, DISABLE the new one.
* ALERT/DISABLED and ``u < 0.60`` → ENABLE the disabled direction (if any) and close the alert (episode ends).

Between 0.60 and 0.80 (or 1.00) nothing changes, so a balance hovering around a threshold raises exactly one
alert and one signal. A limit of 0 admits no imbalance: any non-zero net is over every threshold.

The *deficit direction* is the direction whose exports make the net: when ``net_delta > 0`` wl_a exported more
than it imported, so a→b (wl_a exporting, wl_b importing) is disabled; when ``net_delta < 0`` it is b→a. The
other direction is the one that compensates.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from cp_server.settings.risk import RiskSettings

from .ledger import RISK_CONTEXT, ZERO


class Level(enum.Enum):
    """Risk level of a pair (stored by name)."""

    OK = 1
    ALERT = 2
    DISABLED = 3


class ActionKind(enum.Enum):
    RAISE_ALERT = "raise_alert"
    ESCALATE_ALERT = "escalate_alert"
    CLOSE_ALERT = "close_alert"
    DISABLE = "disable"
    ENABLE = "enable"


@dataclass(frozen=True)
class Action:
    """One consequence of a transition; ``exporter_wl`` names the direction for DISABLE/ENABLE."""

    kind: ActionKind
    exporter_wl: str = ""


@dataclass(frozen=True)
class PairLevel:
    """The threshold state stored with a pair's balance."""

    level: Level = Level.OK
    disabled_exporter: str | None = None


def utilisation(net: Decimal, limit: Decimal) -> Decimal:
    """``|net| / limit`` rounded to 6 decimals for reports; ``Infinity`` for a zero limit with a non-zero net."""
    if limit <= ZERO:
        return ZERO if net == ZERO else Decimal("Infinity")
    return RISK_CONTEXT.divide(abs(net), limit).quantize(Decimal("0.000001"))


def _at_least(net: Decimal, limit: Decimal, fraction: Decimal) -> bool:
    return abs(net) >= RISK_CONTEXT.multiply(fraction, limit) if limit > ZERO else net != ZERO


def _above(net: Decimal, limit: Decimal, fraction: Decimal) -> bool:
    return abs(net) > RISK_CONTEXT.multiply(fraction, limit) if limit > ZERO else net != ZERO


def _below(net: Decimal, limit: Decimal, fraction: Decimal) -> bool:
    return abs(net) < RISK_CONTEXT.multiply(fraction, limit) if limit > ZERO else net == ZERO


def deficit_exporter(wl_a: str, wl_b: str, net: Decimal) -> str:
    """Exporter of the direction that makes the imbalance (see module docstring)."""
    return wl_a if net > ZERO else wl_b


def compensation_required(net: Decimal, limit: Decimal, settings: RiskSettings) -> Decimal:
    """Value the compensating direction must export to bring ``|net|`` down to the alert level."""
    target = RISK_CONTEXT.multiply(settings.alert_threshold, limit)
    return max(ZERO, RISK_CONTEXT.subtract(abs(net), target))


def evaluate(
    state: PairLevel, *, wl_a: str, wl_b: str, net: Decimal, limit: Decimal, settings: RiskSettings
) -> tuple[PairLevel, list[Action]]:
    """The next state of a pair after its net changed, and the actions that transition implies."""
    level, disabled = state.level, state.disabled_exporter
    actions: list[Action] = []
    over = _above(net, limit, settings.disable_threshold)
    if level is Level.OK and _at_least(net, limit, settings.alert_threshold):
        actions.append(Action(ActionKind.RAISE_ALERT))
        level = Level.ALERT
    if over:
        deficit = deficit_exporter(wl_a, wl_b, net)
        if level is Level.ALERT:
            actions += [Action(ActionKind.DISABLE, deficit), Action(ActionKind.ESCALATE_ALERT)]
            level, disabled = Level.DISABLED, deficit
        elif level is Level.DISABLED and disabled != deficit:
            if disabled is not None:
                actions.append(Action(ActionKind.ENABLE, disabled))
            actions.append(Action(ActionKind.DISABLE, deficit))
            disabled = deficit
    elif level is not Level.OK and _below(net, limit, settings.reenable_threshold):
        if disabled is not None:
            actions.append(Action(ActionKind.ENABLE, disabled))
        actions.append(Action(ActionKind.CLOSE_ALERT))
        level, disabled = Level.OK, None
    return PairLevel(level, disabled), actions
