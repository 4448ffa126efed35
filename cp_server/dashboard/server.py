"""The dashboard's HTTPS listener: uvicorn serving the ASGI app inside the CP's event loop.

The socket is bound when the dashboard is built (a busy port fails the CP's start, like its other listeners), and
TLS uses the CP's own certificate and key from its PKI directory. Uvicorn's signal capture is disabled: the CP owns
SIGTERM/SIGINT and stops the dashboard with its other loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

GRACEFUL_S = 2


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the CP handles the signals


def bind(address: str) -> socket.socket:
    """A listening TCP socket on ``HOST:PORT`` (port 0: any free port)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class DashboardServer:
    """One HTTPS listener for the app."""

    def __init__(self, app: ASGIApp, address: str, certfile: Path, keyfile: Path) -> None:
        self._sock = bind(address)
        self.host = address.rpartition(":")[0]
        self.port: int = self._sock.getsockname()[1]
        self._config = uvicorn.Config(app, ssl_certfile=str(certfile), ssl_keyfile=str(keyfile), log_config=None,
                                      access_log=False, lifespan="off", server_header=False,
                                      timeout_graceful_shutdown=GRACEFUL_S)
        self._server = _Server(self._config)

    @property
    def base_url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "[::]") else "127.0.0.1"
        return f"https://{host}:{self.port}"

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        task = asyncio.ensure_future(self._server.serve(sockets=[self._sock]))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            self._server.should_exit = True
            await task
            self._sock.close()
