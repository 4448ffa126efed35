"""A feature's contribution to a process: its gRPC services, background loops and stop hooks.

Each composition root (``cp_server/app.py``, ``wl_node/app.py``) builds a list of components from its context and
starts one server with all of them, so adding a feature is one line in the root. Who may call the services is
not a component's business: each binary has one authorization table (``cp_server/authz.py``, ``wl_node/authz.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .server import Registration

BackgroundLoop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""A loop that runs until the event is set (graceful stop) and then returns."""


@dataclass
class Component:
    """What one feature adds to a server."""

    name: str
    registrations: list[Registration] = field(default_factory=list)
    service_names: list[str] = field(default_factory=list)
    loops: list[BackgroundLoop] = field(default_factory=list)
    on_drain: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run before the server stops: end what would hold its grace period open (a stream hub closing its streams)."""
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run once the server and the loops have stopped: flush, close threads and channels (``xwl_runtime.lifecycle``)."""
