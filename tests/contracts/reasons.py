"""Every ErrorInfo reason the product code can raise, found by reading its source (no import, no execution).

A reason reaches a caller through an error class (``xwl_runtime.errors``): as a class's ``default_reason``, as a
``reason=`` keyword (a literal, or a module constant, also one imported from another module), or as the first
argument of a small helper whose first parameter is called ``reason`` (``_refuse("TOKEN_INVALID", ...)``). Batch
refusals of event ingest map reason → error class in a dict named ``FATAL``, whose keys are reasons too. Policy
decisions carry their refusal as the first field of a dataclass (``PairDecision(deny_reason, ...)``), raised as the
ErrorInfo reason; their values are literals, ``.get(..., "DEFAULT")`` defaults, and the values of module dicts whose
name contains ``REASON``; a local variable assigned from a function of the same module stands for that function's
literal return values (``reason = _refusal(...)``). The signal gate's two constants are listed by the test itself
(``GATE_REASONS``). Every other ``reason=`` expression given to an error class is reported by ``dynamic_reasons`` so
the test can insist each one is accounted for.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("xwl_runtime", "cp_server", "wl_node")
REASON = re.compile(r"^[A-Z][A-Z0-9_]+$")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _constants(tree: ast.Module) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    out[target.id] = node.value.value
    return out


def _reason_helpers(tree: ast.Module) -> set[str]:
    """Functions whose first parameter is ``reason``."""
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and n.args.args and n.args.args[0].arg == "reason" and n.name != "__init__"}


def _reason_first_classes(tree: ast.Module) -> set[str]:
    """Classes whose first annotated field is a reason (``deny_reason: str | None``)."""
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            fields = [b for b in node.body if isinstance(b, ast.AnnAssign) and isinstance(b.target, ast.Name)]
            if fields and isinstance(fields[0].target, ast.Name) and fields[0].target.id.endswith("reason"):
                out.add(node.name)
    return out


def _literal_returns(tree: ast.Module) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out[node.name] = [r.value.value for r in ast.walk(node) if isinstance(r, ast.Return)
                              and isinstance(r.value, ast.Constant) and isinstance(r.value.value, str)]
    return out


def _assigned_from_calls(tree: ast.Module, functions: dict[str, list[str]]) -> dict[str, str]:
    """Variable → the module function whose result it holds (``reason = _refusal(...)``)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                and node.value.func.id in functions):
            out[node.targets[0].id] = node.value.func.id
    return out


def _trees() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p))
            for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) if "migrations" not in p.parts}


def _error_classes(trees: dict[str, ast.Module]) -> set[str]:
    """XcwlError and every class deriving from it (by name, transitively)."""
    errors = {"XcwlError"}
    grew = True
    while grew:
        grew = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if (isinstance(node, ast.ClassDef) and node.name not in errors
                        and any(isinstance(b, ast.Name) and b.id in errors for b in node.bases)):
                    errors.add(node.name)
                    grew = True
    return errors


def dynamic_reasons() -> set[tuple[str, str]]:
    """(module, expression) of every ``reason=`` given to an error class that is neither a literal nor a constant
    nor a variable holding a module function's result."""
    trees = _trees()
    errors = _error_classes(trees)
    out: set[tuple[str, str]] = set()
    for module, tree in trees.items():
        known = set(_constants(tree)) | set(_assigned_from_calls(tree, _literal_returns(tree)))
        known |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            callee = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if callee not in errors and callee != "__init__" and not isinstance(func, ast.Subscript):
                continue
            for kw in node.keywords:
                if kw.arg != "reason" or isinstance(kw.value, ast.Constant):
                    continue
                if isinstance(kw.value, ast.Name) and kw.value.id in known:
                    continue
                out.add((module, ast.unparse(kw.value)))
    return out


def raised_reasons() -> dict[str, set[str]]:
    """reason → the modules that raise it."""
    trees = _trees()
    constants = {name: _constants(tree) for name, tree in trees.items()}
    decision_classes = set().union(*(_reason_first_classes(tree) for tree in trees.values()))
    found: dict[str, set[str]] = {}

    def add(value: object, module: str) -> None:
        if isinstance(value, str) and REASON.match(value):
            found.setdefault(value, set()).add(module)

    for module, tree in trees.items():
        scope = dict(constants[module])
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                source = node.module if node.level == 0 else _resolve_relative(module, node.module, node.level)
                for alias in node.names:
                    if alias.name in constants.get(source, {}):
                        scope[alias.asname or alias.name] = constants[source][alias.name]
        helpers = _reason_helpers(tree)
        returns = _literal_returns(tree)
        holders = _assigned_from_calls(tree, returns)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {t.id for t in targets if isinstance(t, ast.Name)}
                if "default_reason" in names and isinstance(node.value, ast.Constant):
                    add(node.value.value, module)
                if "FATAL" in names and isinstance(node.value, ast.Dict):
                    for key in node.value.keys:
                        if isinstance(key, ast.Constant):
                            add(key.value, module)
                if any("REASON" in n for n in names) and isinstance(node.value, ast.Dict):
                    for value in node.value.values:
                        if isinstance(value, ast.Constant):
                            add(value.value, module)
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "reason":
                    if isinstance(kw.value, ast.Constant):
                        add(kw.value.value, module)
                    elif isinstance(kw.value, ast.Name) and kw.value.id in scope:
                        add(scope[kw.value.id], module)
                    elif isinstance(kw.value, ast.Name) and kw.value.id in holders:
                        for value in returns[holders[kw.value.id]]:
                            add(value, module)
            callee = node.func.id if isinstance(node.func, ast.Name) else None
            if callee in helpers and node.args and isinstance(node.args[0], ast.Constant):
                add(node.args[0].value, module)
            if callee in decision_classes and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant):
                    add(first.value, module)
                elif isinstance(first, ast.Call) and len(first.args) == 2 and isinstance(first.args[1], ast.Constant):
                    add(first.args[1].value, module)  # MAPPING.get(key, "DEFAULT")
    return found


def _resolve_relative(module: str, name: str, level: int) -> str:
    parts = module.split(".")
    return ".".join([*parts[: len(parts) - level], name])
