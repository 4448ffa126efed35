"""The pair-policy rules of the catalog, on both sides of a direction, read from the node's ``PolicyState``.

Exporter side (``export_grant``): what a peer WL may receive from this WL's feed. Everything is decided here from
the caller's mTLS identity and this node's view, never from a request field:

* the pair {self, caller} exists, is ACTIVE and its imports are not frozen (CP kill switch);
* the direction self → caller has ``import_enabled`` (importer's choice) and ``destination_visible`` (exporter's);
* each offer is served only once older than the direction's ``export_delay`` (a per-offer filter, see feed.py).

Importer side (``importable_exporters``): the partners whose offers this WL imports and shows; the same rules seen
from the other end. Anything else is hidden locally at once, without waiting for the exporter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal

from wl_node.policy.state import PolicyState
from xporty.cp.v1 import policy_pb2
from xwl_runtime.errors import FailedPrecondition, PermissionDenied
from xwl_runtime.money import MoneyError, parse_rate

ACTIVE = policy_pb2.RELATIONSHIP_STATUS_ACTIVE
FEED_EPOCH = "1"
"""Bumped if the feed's meaning changes, so every stored cursor restarts with a full sync."""


@dataclass(frozen=True)
class ExportGrant:
    """What one peer may see: offers older than ``delay``; ``fingerprint`` ties cursors to these terms."""

    importer_wl: str
    delay: dt.timedelta
    fingerprint: str


def _refusal(pair: policy_pb2.PairPolicy | None, direction: policy_pb2.DirectionPolicy | None) -> str | None:
    """The reason a direction may not trade catalog offers, or None when it may."""
    if pair is None:
        return "NO_PAIR"
    if pair.status != ACTIVE:
        return "PAIR_NOT_ACTIVE"
    if pair.imports_frozen:
        return "IMPORTS_FROZEN"
    if direction is None or not direction.import_enabled:
        return "IMPORT_DISABLED"
    if not direction.destination_visible:
        return "NOT_VISIBLE"
    return None


def export_grant(state: PolicyState, caller_wl: str) -> ExportGrant:
    """The terms under which ``caller_wl`` may read this WL's feed; raises when it may read nothing."""
    if caller_wl == state.wl_id:
        raise PermissionDenied("a node does not import its own offers", reason="SELF_NOT_ALLOWED")
    if state.current() is None:
        raise FailedPrecondition("no policy view yet", reason="NO_POLICY_VIEW")
    pair = state.pair(caller_wl)
    direction = state.direction(state.wl_id, caller_wl)
    reason = _refusal(pair, direction)
    if reason is not None:
        raise PermissionDenied(f"{caller_wl} may not import offers of {state.wl_id}", reason=reason,
                               metadata={"importer": caller_wl})
    assert direction is not None
    delay = direction.export_delay.ToTimedelta() if direction.HasField("export_delay") else dt.timedelta(0)
    delay = max(delay, dt.timedelta(0))
    digest = hashlib.sha256(f"{FEED_EPOCH}|{state.wl_id}|{caller_wl}|{delay // dt.timedelta(microseconds=1)}"
                            .encode()).hexdigest()[:16]
    return ExportGrant(importer_wl=caller_wl, delay=delay, fingerprint=digest)


@dataclass(frozen=True)
class ImportTerms:
    """How this WL imports one exporter's offers: its endpoint and currency, and the pair's FX."""

    exporter_wl: str
    endpoint: str
    source_currency: str
    source_decimals: int
    currency: str
    decimals: int
    fx_rate: Decimal
    fx_rate_text: str
    fx_version: int
    exporter_is_wl_a: bool


def import_terms(state: PolicyState, exporter_wl: str) -> ImportTerms | None:
    """The terms for importing from ``exporter_wl`` now, or None when this WL must not show its offers."""
    if exporter_wl == state.wl_id or state.current() is None:
        return None
    pair = state.pair(exporter_wl)
    if _refusal(pair, state.direction(exporter_wl, state.wl_id)) is not None:
        return None
    assert pair is not None
    source, own = state.white_label(exporter_wl), state.white_label(state.wl_id)
    if source is None or own is None:
        return None
    try:
        rate = parse_rate(pair.fx_rate)
    except MoneyError:
        return None  # a view with a bad rate is refused by the agent; never price with it
    return ImportTerms(
        exporter_wl=exporter_wl, endpoint=source.trader_endpoint, source_currency=source.currency,
        source_decimals=source.currency_decimals, currency=own.currency, decimals=own.currency_decimals,
        fx_rate=rate, fx_rate_text=pair.fx_rate, fx_version=pair.fx_version,
        exporter_is_wl_a=pair.wl_a == exporter_wl,
    )


def importable_exporters(state: PolicyState) -> dict[str, ImportTerms]:
    """Every partner whose offers this WL imports now, with the terms."""
    view = state.current()
    if view is None:
        return {}
    out: dict[str, ImportTerms] = {}
    for pair in view.pairs:
        other = pair.wl_b if pair.wl_a == state.wl_id else pair.wl_a
        terms = import_terms(state, other)
        if terms is not None:
            out[other] = terms
    return out
