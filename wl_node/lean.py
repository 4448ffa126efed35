"""Process-level memory settings of a long-lived node process (``run_node`` applies them at start).

glibc gives each thread that allocates its own malloc arena (up to 8 per core); a node's ~20 threads (gRPC's event
engine, the SQLite connection threads, the transaction runner) would each keep a partly used arena resident. Two
arenas are plenty for a process whose hot path is one event loop, and measurably cut its RSS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import importlib.util
import logging
import pkgutil
import sys

log = logging.getLogger(__name__)

M_ARENA_MAX = -8
"""``mallopt`` parameter number of ``M_ARENA_MAX`` in glibc's malloc.h."""
NODE_ARENAS = 2


def limit_malloc_arenas(arenas: int = NODE_ARENAS) -> bool:
    """Cap glibc's malloc arenas (like ``MALLOC_ARENA_MAX``) for threads started from now on; False elsewhere."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        log.debug("mallopt unavailable; malloc arenas left as they are")
        return False


ASYNCIO_PACKAGE = "sqlalchemy.ext.asyncio"
_ENGINE_NAMES = frozenset({"AsyncConnection", "AsyncEngine", "AsyncTransaction", "async_engine_from_config",
                           "create_async_engine", "create_async_pool_from_url"})
_RESULT_NAMES = frozenset({"AsyncMappingResult", "AsyncResult", "AsyncScalarResult", "AsyncTupleResult"})


def defer_asyncio_orm() -> bool:
    """Let ``sqlalchemy.ext.asyncio`` load without the ORM until something asks for a session.

    The package's ``__init__`` imports its ``session`` module, which loads all of ``sqlalchemy.orm`` (≈ 6 MiB
    resident) into a node that only uses ``AsyncEngine``/``AsyncConnection``. This puts a package module in its
    place whose engine and result names come from their submodules on first access; any other name (a session,
    ``async_sessionmaker``) runs the real ``__init__`` into the same module, so nothing is lost, only loaded on
    use. Must run before anything imports the package; False (nothing done) when it is already imported.
    """
    if ASYNCIO_PACKAGE in sys.modules:
        return False
    spec = importlib.util.find_spec(ASYNCIO_PACKAGE)
    if spec is None or spec.submodule_search_locations is None or spec.loader is None:
        return False
    package = importlib.util.module_from_spec(spec)  # the real package's identity (__spec__, __path__, __file__)
    loader = spec.loader
    submodules = {m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)}
    complete = False

    def __getattr__(name: str) -> object:  # noqa: N807 (a module's attribute hook, PEP 562)
        nonlocal complete
        if name in _ENGINE_NAMES or name in _RESULT_NAMES:
            sub = importlib.import_module(f"{ASYNCIO_PACKAGE}.{'engine' if name in _ENGINE_NAMES else 'result'}")
            value = getattr(sub, name)
            setattr(package, name, value)
            return value
        if not complete and not name.startswith("__") and name not in submodules:  # `from . import exc` is
            # the import system probing for a submodule it then imports: not a reason to load everything.
            complete = True
            loader.exec_module(package)  # the full package, ORM sessions included
            return getattr(package, name)
        raise AttributeError(f"module {ASYNCIO_PACKAGE!r} has no attribute {name!r}")

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[ASYNCIO_PACKAGE] = package
    # What the real ``__init__`` does on import besides its imports: set up the greenlet bridge of the async drivers.
    from sqlalchemy.util import concurrency

    shim = getattr(concurrency, "_concurrency_shim", None)
    if shim is not None:
        shim._initialize()  # noqa: SLF001
    return True
