"""``xcwl bench <name> [--json] …``: run the benchmark module ``xcwl.bench.<name>``.

Each module exposes ``add_arguments(parser)`` and ``async run(args) -> dict[str, float]`` returning flat figure
names (``policy.propagation.p99_ms.n50``) to numbers. ``--json`` prints exactly that one flat JSON object on stdout;
without it a readable table. Modules are imported only when chosen, so the rest of ``xcwl`` stays fast to start.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import pkgutil
import sys
from collections.abc import Awaitable, Callable, Mapping

from . import bench
from .errors import CliError
from .output import table
from .progress import reporting


def names() -> list[str]:
    """Benchmark modules present in ``xcwl.bench``."""
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("bench", help=f"benchmarks ({', '.join(names())})", add_help=True)
    parser.add_argument("name", choices=names(), help="which benchmark")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own flags (see: xcwl bench NAME -h)")
    parser.set_defaults(func=_run)


def build_parser(name: str) -> argparse.ArgumentParser:
    """The parser of ``xcwl bench NAME``: ``--json`` plus the module's own flags."""
    module = importlib.import_module(f"xcwl.bench.{name}")
    parser = argparse.ArgumentParser(prog=f"xcwl bench {name}", description=(module.__doc__ or "").split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one flat JSON object of figure names to numbers")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    module.add_arguments(parser)
    return parser


def render(figures: Mapping[str, float]) -> str:
    return table(["figure", "value"], [(k, f"{v:.3f}" if isinstance(v, float) else v) for k, v in figures.items()])


async def _with_progress(name: str, run: Callable[[argparse.Namespace], Awaitable[Mapping[str, float]]],
                         bench_args: argparse.Namespace) -> Mapping[str, float]:
    """Run the benchmark with progress lines on stderr; a module may announce phases via ``args.progress``."""
    async with reporting(f"bench {name}", enabled=not bench_args.quiet) as progress:
        bench_args.progress = progress
        return await run(bench_args)


def _run(args: argparse.Namespace) -> int:
    parser = build_parser(args.name)
    bench_args = parser.parse_args(args.rest)
    module = importlib.import_module(f"xcwl.bench.{args.name}")
    figures = asyncio.run(_with_progress(args.name, module.run, bench_args))
    if not isinstance(figures, Mapping) or not all(isinstance(v, int | float) for v in figures.values()):
        raise CliError(f"benchmark {args.name} returned something other than figure names to numbers")
    if bench_args.json:
        print(json.dumps(dict(figures), sort_keys=True))
    else:
        print(render(figures))
    sys.stdout.flush()
    return 0
