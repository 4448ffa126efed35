"""Per-RPC authorization: one table per binary keyed by full method name, default deny.

Each binary writes its whole table as data in one file (``cp_server/authz.py``, ``wl_node/authz.py``) with
``build``: one row per method, a second row for the same method is refused. A method missing from the table is
refused with PERMISSION_DENIED, so a new RPC is unreachable until someone decides who may call it, and
``check_complete`` (run by ``xwl_runtime.server.start_server``) refuses to start a server that registers a method
without a rule. Servicers do not check the caller's kind again; they check only ownership of a resource (this
checkout was made by this app), which a table keyed by method cannot express.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from google.protobuf import descriptor_pool

from .identity import Kind

HEALTH_SERVICE = "grpc.health.v1.Health"
HEALTH_METHODS = (f"/{HEALTH_SERVICE}/Check", f"/{HEALTH_SERVICE}/Watch")
REFLECTION_METHODS = (
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
)
ALL_KINDS = frozenset(Kind)


class AuthzTableError(ValueError):
    """The authorization table is not one rule per method of the server (duplicate, unknown or missing)."""


@dataclass(frozen=True)
class Rule:
    """Who may call one method.

    ``kinds``: identity kinds allowed. ``anonymous``: callable without a client certificate (enrollment, health
    on the enrollment listener). ``same_wl``: an APP caller must be an app of the server's own WL (a node's local
    API); the pipeline refuses another WL's app with ``NOT_THIS_WL``.
    """

    kinds: frozenset[Kind]
    anonymous: bool = False
    same_wl: bool = False


Row = tuple[str, Rule]
"""One line of a table: the full method name (``/pkg.Service/Method``) and its rule."""


def methods(service_full_name: str, names: Iterable[str], rule: Rule) -> list[Row]:
    """Rows giving the same rule to several methods of one service."""
    return [(f"/{service_full_name}/{name}", rule) for name in names]


def ops_tools(rule: Rule) -> list[Row]:
    """Rows for health and reflection (every server registers both)."""
    return [(method, rule) for method in (*HEALTH_METHODS, *REFLECTION_METHODS)]


def build(*rows: Iterable[Row]) -> dict[str, Rule]:
    """The table of ``rows``; refuses a method given twice, so each method has exactly one rule."""
    full: dict[str, Rule] = {}
    for group in rows:
        for method, rule in group:
            if method in full:
                raise AuthzTableError(f"two rules for {method}")
            full[method] = rule
    return full


def service_methods(service_full_name: str, names: Iterable[str], rule: Rule) -> dict[str, Rule]:
    """The same rule for several methods of one service, as a mapping (small test servers)."""
    return dict(methods(service_full_name, names, rule))


def table(entries: Mapping[str, Rule]) -> dict[str, Rule]:
    """``entries`` plus health and reflection for every authenticated caller unless ``entries`` say otherwise
    (small test and bench servers)."""
    return {**dict(ops_tools(Rule(ALL_KINDS))), **entries}


def service_method_names(service_full_name: str) -> list[str]:
    """The full method names of a service known to the default descriptor pool (generated stubs imported)."""
    try:
        service = descriptor_pool.Default().FindServiceByName(service_full_name)
    except KeyError:
        raise AuthzTableError(f"unknown service {service_full_name}") from None
    return [f"/{service_full_name}/{m.name}" for m in service.methods]


def check_complete(authz: Mapping[str, Rule], service_names: Iterable[str], *, local_wl: str | None) -> None:
    """Refuse a server whose table misses a rule for a method it serves, or needs a local WL it lacks.

    ``service_names``: the services the server registers besides health and reflection.
    """
    served = [*HEALTH_METHODS, *REFLECTION_METHODS, *(m for s in service_names for m in service_method_names(s))]
    missing = sorted(m for m in served if m not in authz)
    if missing:
        raise AuthzTableError(f"no authorization rule for {', '.join(missing)}")
    if local_wl is None and any(rule.same_wl for rule in authz.values()):
        raise AuthzTableError("rules restricted to the server's own WL need the server's WL id")
