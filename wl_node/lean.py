"""Process-level memory settings of a long-lived node process (``run_node`` applies them at start).

glibc gives each thread that allocates its own malloc arena (up to 8 per core); a node's ~20 threads (gRPC's event
engine, the SQLite connection threads, the transaction runner) would each keep a partly used arena resident. Two
arenas are plenty for a process whose hot path is one event loop, and measurably cut its RSS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

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
