"""A TCP load balancer in front of CP replicas, for the mesh bench's ``--postgres`` run.

Nodes dial one address; each new connection goes to the next live replica (round robin, skipping a replica that
refuses). TLS passes through untouched, so nodes still pin the CP's identity end to end. When a replica dies its
connections break, and the nodes' reconnects land on the other replica — what a production L4 balancer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools


class TcpBalancer:
    """Round-robin TCP proxy on an ephemeral loopback port."""

    def __init__(self, targets: list[str]) -> None:
        self._targets = targets
        self._next = itertools.cycle(range(len(targets)))
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self._targets)):
            host, port = self._targets[next(self._next)].rsplit(":", 1)
            with contextlib.suppress(OSError):
                return await asyncio.open_connection(host, int(port))
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._dial()
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        a = asyncio.ensure_future(_pipe(reader, up_writer))
        b = asyncio.ensure_future(_pipe(up_reader, writer))
        self._tasks.update((a, b))
        try:
            await asyncio.wait((a, b), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (a, b):
                task.cancel()
                self._tasks.discard(task)
            for w in (writer, up_writer):
                w.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
