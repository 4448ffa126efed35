"""Every ErrorInfo reason the servers raise is a documented value of ``xporty.common.v1.ErrorReason``."""

from __future__ import annotations

from google.rpc import error_details_pb2, status_pb2

from tests.contracts.reasons import dynamic_reasons, raised_reasons
from wl_node.risk.enforcer import DIRECTION_DISABLED, RISK_VIEW_STALE
from xporty.common.v1 import errors_pb2
from xwl_runtime.errors import ERROR_DOMAIN, FailedPrecondition
from xwl_runtime.ratelimit import RATE_LIMITED

DOCUMENTED = set(errors_pb2.ErrorReason.keys()) - {"ERROR_REASON_UNSPECIFIED"}
GATE_REASONS = {DIRECTION_DISABLED, RISK_VIEW_STALE}
"""Returned by the enforcer's signal gate and raised as the reason of the refused trade (not visible to the scan)."""
DEPRECATED = {"NOT_A_NODE", "FOREIGN_APP", "CHECKOUT_NOT_AVAILABLE", "ORDERS_NOT_AVAILABLE", "CONTACTS_NOT_AVAILABLE",
              "SLO_DISABLED", "OPERATIONS_DISABLED", "ALERTS_UNAVAILABLE"}
"""Kept in the enum (contracts only grow) and marked deprecated in its comment: role checks now live in the
authorization tables, and no node or CP is built without the feature these reasons said was missing."""


ACCOUNTED_DYNAMIC = {
    ("xwl_runtime.errors", "reason"),  # the error classes pass their ``reason`` argument on
    ("xwl_runtime.ratelimit", "reason"),  # RateLimited passes it on; callers use the module's constants
    ("xwl_runtime.tokens", "reason"),  # _refuse("TOKEN_…", …): the helper rule
    ("cp_server.risk.engine", "self.refusal.reason"),  # the keys of FATAL
    ("wl_node.risk.gate", "decision.deny_reason"),  # PairDecision literals and GATE_REASONS
    ("wl_node.checkout.service", "decision.deny_reason"),  # the same decisions
}
"""Every non-literal ``reason=`` in the code, with where its values are found."""


def _raised() -> dict[str, set[str]]:
    raised = raised_reasons()
    for reason in GATE_REASONS:
        raised.setdefault(reason, set()).add("wl_node.risk.enforcer")
    return raised


def test_every_raised_reason_is_in_the_error_reason_enum() -> None:
    raised = _raised()
    missing = {reason: sorted(modules) for reason, modules in raised.items() if reason not in DOCUMENTED}
    assert missing == {}, (
        "reasons raised but missing from proto/xporty/common/v1/errors.proto (append them, with a comment): "
        f"{missing}")


def test_the_scan_sees_every_way_a_reason_is_raised() -> None:
    """Guards the scanner itself: literals, class defaults, imported constants, helpers and the FATAL table."""
    raised = raised_reasons()
    assert "IDEMPOTENCY_KEY_REUSED" in raised  # reason="..." literal
    assert "FAILED_PRECONDITION" in raised  # default_reason of an error class
    assert RATE_LIMITED in raised and "xwl_runtime.ratelimit" in raised[RATE_LIMITED]  # module constant
    assert "BOOTSTRAP_TOKEN_INVALID" in raised  # constant defined in one module, raised there
    assert "TOKEN_WRONG_AUDIENCE" in raised  # _refuse("...", ...) helper
    assert "EVENT_NOT_OWNED" in raised  # FATAL reason → error class table
    assert {"NO_PAIR_POLICY", "IMPORTS_FROZEN", "PAIR_NOT_ACTIVE"} <= set(raised)  # PairDecision(...) literals
    assert {"PAIR_PAUSED", "PAIR_BLOCKED"} <= set(raised)  # values of a *_REASON* mapping
    assert {"NO_PAIR", "NOT_VISIBLE"} <= set(raised)  # reason = _refusal(...): the function's literal returns
    assert len(raised) >= 80


def test_every_computed_reason_is_accounted_for() -> None:
    """A new ``reason=<expression>`` the scan cannot follow fails here: make it a literal or a constant, or extend
    tests/contracts/reasons.py so its values are found, then list it above."""
    assert dynamic_reasons() - ACCOUNTED_DYNAMIC == set()


def test_documented_reasons_are_not_stale() -> None:
    """The enum holds no reason the code no longer raises (remove neither: mark it deprecated in the comment)."""
    stale = DOCUMENTED - DEPRECATED - set(_raised())
    assert stale == set(), f"documented but never raised: {sorted(stale)}"
    assert DEPRECATED <= DOCUMENTED and not DEPRECATED & set(_raised()), "a deprecated reason is raised again"


def test_a_raised_error_carries_a_reason_clients_parse_with_the_enum() -> None:
    status = FailedPrecondition("x", reason="STALE_PRICE").to_status()
    details = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"]).details
    info = error_details_pb2.ErrorInfo()
    assert details[0].Unpack(info)
    assert info.domain == ERROR_DOMAIN
    assert errors_pb2.ErrorReason.Value(info.reason) == errors_pb2.STALE_PRICE
