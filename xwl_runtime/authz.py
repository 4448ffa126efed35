"""Per-RPC authorization: one table keyed by full method name, default deny.

Each server builds its table from ``Rule`` entries; a method missing from the table is refused with
PERMISSION_DENIED, so a new RPC is unreachable until someone decides who may call it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .identity import Kind

HEALTH_METHODS = ("/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch")
REFLECTION_METHODS = (
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
)
ALL_KINDS = frozenset(Kind)


@dataclass(frozen=True)
class Rule:
    """Who may call one method.

    ``kinds``: identity kinds allowed. ``anonymous``: callable without a client certificate (enrollment, health
    on the enrollment listener). ``same_wl_only``: for APP callers, the app's WL must be the server's WL.
    """

    kinds: frozenset[Kind]
    anonymous: bool = False


def table(entries: Mapping[str, Rule], *, ops_tools: bool = True) -> dict[str, Rule]:
    """A full table: ``entries`` plus health and reflection for every authenticated caller."""
    full: dict[str, Rule] = {m: Rule(ALL_KINDS) for m in (*HEALTH_METHODS, *REFLECTION_METHODS)} if ops_tools else {}
    full.update(entries)
    return full


def service_methods(service_full_name: str, methods: Iterable[str], rule: Rule) -> dict[str, Rule]:
    """The same rule for several methods of one service."""
    return {f"/{service_full_name}/{m}": rule for m in methods}
