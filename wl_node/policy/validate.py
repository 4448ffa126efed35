"""Checks a policy view must pass before the node serves it.

A view that fails is rejected as a whole: the agent reports the error to the CP and keeps serving its last good
view. The checks are the ones every reader of ``PolicyState`` relies on without re-checking: the view is ours, it
is versioned, every pair names WLs the view describes, decimals parse, directions belong to their pair, and token
keys load as EC public keys.
"""

from __future__ import annotations

import functools
from decimal import Decimal, InvalidOperation

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from xporty.cp.v1 import policy_pb2

MAX_CURRENCY_DECIMALS = 8
TOKEN_ALGORITHMS = frozenset({"ES256", "ES384", "ES512"})
_STATUSES = frozenset(
    {
        policy_pb2.RELATIONSHIP_STATUS_ACTIVE,
        policy_pb2.RELATIONSHIP_STATUS_PAUSED,
        policy_pb2.RELATIONSHIP_STATUS_BLOCKED,
    }
)


class ViewRejected(Exception):
    """A view the node cannot apply; the message names the offending element and is sent to the CP."""


def _decimal(value: str, where: str, *, positive: bool) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation as err:
        raise ViewRejected(f"{where}: {value!r} is not a decimal") from err
    if not number.is_finite():
        raise ViewRejected(f"{where}: {value!r} is not finite")
    if positive and number <= 0:
        raise ViewRejected(f"{where}: {value!r} must be > 0")
    if not positive and number < 0:
        raise ViewRejected(f"{where}: {value!r} must be >= 0")
    return number


def _check_white_labels(view: policy_pb2.PolicyView) -> set[str]:
    seen: set[str] = set()
    for i, wl in enumerate(view.white_labels):
        where = f"white_labels[{i}]"
        if not wl.wl_id:
            raise ViewRejected(f"{where}.wl_id is empty")
        if wl.wl_id in seen:
            raise ViewRejected(f"{where}.wl_id {wl.wl_id!r} appears twice")
        seen.add(wl.wl_id)
        if not wl.currency:
            raise ViewRejected(f"{where}.currency is empty")
        if wl.currency_decimals > MAX_CURRENCY_DECIMALS:
            raise ViewRejected(f"{where}.currency_decimals {wl.currency_decimals} exceeds {MAX_CURRENCY_DECIMALS}")
        _decimal(wl.reference_rate, f"{where}.reference_rate", positive=True)
    return seen


def _check_pair(wl_id: str, i: int, pair: policy_pb2.PairPolicy, known: set[str]) -> None:
    where = f"pairs[{i}]"
    if not pair.wl_a or not pair.wl_b or pair.wl_a >= pair.wl_b:
        raise ViewRejected(f"{where}: wl_a {pair.wl_a!r} must sort before wl_b {pair.wl_b!r}")
    if wl_id not in (pair.wl_a, pair.wl_b):
        raise ViewRejected(f"{where}: pair {{{pair.wl_a}, {pair.wl_b}}} does not include {wl_id!r}")
    for member in (pair.wl_a, pair.wl_b):
        if member not in known:
            raise ViewRejected(f"{where}: WL {member!r} is not in the view's white_labels")
    if pair.status not in _STATUSES:
        raise ViewRejected(f"{where}.status {pair.status} is not a known relationship status")
    _decimal(pair.imbalance_limit, f"{where}.imbalance_limit", positive=False)
    _decimal(pair.fx_rate, f"{where}.fx_rate", positive=True)
    members = {pair.wl_a, pair.wl_b}
    directions: set[tuple[str, str]] = set()
    for j, d in enumerate(pair.directions):
        dwhere = f"{where}.directions[{j}]"
        key = (d.exporter_wl, d.importer_wl)
        if d.exporter_wl == d.importer_wl or {d.exporter_wl, d.importer_wl} != members:
            raise ViewRejected(f"{dwhere}: {d.exporter_wl!r}->{d.importer_wl!r} is not a direction of the pair")
        if key in directions:
            raise ViewRejected(f"{dwhere}: direction {d.exporter_wl!r}->{d.importer_wl!r} appears twice")
        directions.add(key)
        if d.export_delay.seconds < 0 or d.export_delay.nanos < 0:
            raise ViewRejected(f"{dwhere}.export_delay is negative")


@functools.lru_cache(maxsize=64)
def _pem_problem(pem: str) -> str:
    """Why ``pem`` is not a usable EC public key ("" when it is); cached: every view repeats the same few keys."""
    try:
        public = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        return "does not parse as a PEM public key"
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return "is not an EC public key"
    return ""


def _check_token_keys(view: policy_pb2.PolicyView) -> None:
    kids: set[str] = set()
    for i, key in enumerate(view.token_keys):
        where = f"token_keys[{i}]"
        if not key.kid:
            raise ViewRejected(f"{where}.kid is empty")
        if key.kid in kids:
            raise ViewRejected(f"{where}.kid {key.kid!r} appears twice")
        kids.add(key.kid)
        if key.algorithm not in TOKEN_ALGORITHMS:
            raise ViewRejected(f"{where}.algorithm {key.algorithm!r} is not one of {sorted(TOKEN_ALGORITHMS)}")
        problem = _pem_problem(key.public_key_pem)
        if problem:
            raise ViewRejected(f"{where}.public_key_pem {problem}")


def validate_view(view: policy_pb2.PolicyView, wl_id: str) -> None:
    """Raise ``ViewRejected`` unless ``view`` is a well-formed view for ``wl_id``."""
    if view.wl_id != wl_id:
        raise ViewRejected(f"wl_id {view.wl_id!r} is not this node's WL {wl_id!r}")
    if view.version <= 0:
        raise ViewRejected(f"version {view.version} must be > 0")
    known = _check_white_labels(view)
    seen_pairs: set[tuple[str, str]] = set()
    for i, pair in enumerate(view.pairs):
        _check_pair(wl_id, i, pair, known)
        if (pair.wl_a, pair.wl_b) in seen_pairs:
            raise ViewRejected(f"pairs[{i}]: pair {{{pair.wl_a}, {pair.wl_b}}} appears twice")
        seen_pairs.add((pair.wl_a, pair.wl_b))
    _check_token_keys(view)
