"""Packages import each other in one direction: no import cycle between the packages of a binary.

A package is ``<binary>.<name>`` (``wl_node.catalog``, ``cp_server.risk``); imports are read from the source
(TYPE_CHECKING imports included). The node's features are built in dependency order (``wl_node.app``), so the
packages that own a proto service (trader, storefront) sit above the ones they serve from; on the CP the settings
and the store sit at the bottom and the composition root (``cp_server.app``) at the top (``docs/architecture.md``
gives both orders).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARIES = ("wl_node", "cp_server", "xwl_runtime")

def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def import_graph() -> dict[str, set[str]]:
    """Package → packages it imports (within the same product binaries)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for binary in BINARIES:
        for path in (ROOT / binary).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            module, is_package = _module_name(path)
            for node in ast.walk(ast.parse(path.read_text())):
                targets: list[str] = []
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = module.split(".") if is_package else module.split(".")[:-1]
                        base = base[: len(base) - (node.level - 1)]
                        targets = [".".join([*base, *([node.module] if node.module else [])])]
                    else:
                        targets = [node.module or ""]
                for target in targets:
                    if target.split(".")[0] in BINARIES and _package(target) != _package(module):
                        edges[_package(module)].add(_package(target))
    return edges


def cycles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected sets of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_cycle_detection_sees_a_cycle() -> None:
    assert cycles({"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}) == {
        frozenset({"a.x", "a.y", "a.z"})}


def test_features_that_own_a_service_sit_above_what_they_serve() -> None:
    """No two of these packages import each other: the service owner (or the consumer) sits above."""
    edges = import_graph()
    for low, high in (("wl_node.catalog", "wl_node.storefront"), ("wl_node.catalog", "wl_node.trader"),
                      ("cp_server.risk", "cp_server.signals"), ("cp_server.risk", "cp_server.telemetry"),
                      ("cp_server.risk", "cp_server.analytics"), ("cp_server.signals", "cp_server.telemetry")):
        assert high not in edges.get(low, set()), f"{low} imports {high}"


def test_no_import_cycle_between_packages() -> None:
    found = cycles(import_graph())
    assert not found, [sorted(c) for c in found]
