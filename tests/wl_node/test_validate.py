"""Every rule a policy view must pass before the node applies it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.wl_node.fake_cp import make_view
from wl_node.policy.validate import ViewRejected, validate_view
from xporty.cp.v1 import policy_pb2

WL = "wl-a"
Mutation = Callable[[policy_pb2.PolicyView], None]


def _set(path: str, value: object) -> Mutation:
    def mutate(view: policy_pb2.PolicyView) -> None:
        target: object = view
        *parents, last = path.split(".")
        for part in parents:
            name, _, index = part.partition("[")
            target = getattr(target, name)
            if index:
                target = target[int(index[:-1])]  # type: ignore[index]
        setattr(target, last, value)

    return mutate


def _drop_white_label(wl_id: str) -> Mutation:
    def mutate(view: policy_pb2.PolicyView) -> None:
        keep = [wl for wl in view.white_labels if wl.wl_id != wl_id]
        del view.white_labels[:]
        view.white_labels.extend(keep)

    return mutate


def _duplicate(field: str) -> Mutation:
    def mutate(view: policy_pb2.PolicyView) -> None:
        items = getattr(view, field)
        items.append(items[0])

    return mutate


def _pair(wl_a: str, wl_b: str) -> Mutation:
    def mutate(view: policy_pb2.PolicyView) -> None:
        view.pairs[0].wl_a, view.pairs[0].wl_b = wl_a, wl_b

    return mutate


def _duplicate_direction(view: policy_pb2.PolicyView) -> None:
    view.pairs[0].directions.append(view.pairs[0].directions[0])


CASES: dict[str, tuple[Mutation, str]] = {
    "other wl": (_set("wl_id", "wl-z"), "wl_id"),
    "version zero": (_set("version", 0), "version"),
    "pair wl missing": (_drop_white_label("wl-b"), "'wl-b' is not in the view"),
    "pair not ours": (_pair("wl-b", "wl-c"), "does not include"),
    "pair order": (_pair("wl-b", "wl-a"), "sort before"),
    "fx not decimal": (_set("pairs[0].fx_rate", "abc"), "pairs[0].fx_rate"),
    "fx zero": (_set("pairs[0].fx_rate", "0"), "must be > 0"),
    "fx infinite": (_set("pairs[0].fx_rate", "Infinity"), "not finite"),
    "fx empty": (_set("pairs[0].fx_rate", ""), "pairs[0].fx_rate"),
    "limit negative": (_set("pairs[0].imbalance_limit", "-1"), "imbalance_limit"),
    "status unspecified": (_set("pairs[0].status", 0), "status"),
    "reference rate": (_set("white_labels[1].reference_rate", "0"), "reference_rate"),
    "currency decimals": (_set("white_labels[0].currency_decimals", 9), "currency_decimals"),
    "direction foreign": (_set("pairs[0].directions[0].importer_wl", "wl-c"), "not a direction"),
    "direction self": (_set("pairs[0].directions[0].importer_wl", "wl-a"), "not a direction"),
    "direction twice": (_duplicate_direction, "appears twice"),
    "pair twice": (_duplicate("pairs"), "appears twice"),
    "wl twice": (_duplicate("white_labels"), "appears twice"),
    "token key garbage": (_set("token_keys[0].public_key_pem", "not a key"), "token_keys[0].public_key_pem"),
    "token key algorithm": (_set("token_keys[0].algorithm", "HS256"), "algorithm"),
    "token key no kid": (_set("token_keys[0].kid", ""), "kid"),
}


def test_a_well_formed_view_passes() -> None:
    validate_view(make_view(WL, 3, peers=("wl-b", "wl-c")), WL)
    validate_view(policy_pb2.PolicyView(wl_id=WL, version=1), WL)  # no partners yet is valid


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_rule_rejects_the_view_naming_the_problem(case: str) -> None:
    mutate, expected = CASES[case]
    view = make_view(WL, 3)
    mutate(view)
    with pytest.raises(ViewRejected) as err:
        validate_view(view, WL)
    assert expected in str(err.value)


def test_an_rsa_token_key_is_rejected() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    view = make_view(WL, 3)
    view.token_keys[0].public_key_pem = pem
    with pytest.raises(ViewRejected, match="not an EC public key"):
        validate_view(view, WL)
