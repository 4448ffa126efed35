"""Progress of long commands on stderr, so that stdout keeps only the result (one JSON document with ``--json``).

A command that may run for more than a few seconds wraps its work in ``reporting(label)``: nothing is printed for
the first ``quiet_s`` seconds (fast runs stay silent), then one line every ``every_s`` seconds with the elapsed
time and the latest phase the work announced with ``Progress.phase`` (e.g. "publishers connected",
"measuring n=50"). ``--quiet`` (or ``enabled=False``) silences it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TextIO


class Progress:
    """The phase a long command is in; ``phase()`` is cheap and may be called from any coroutine."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.current = "starting"
        self.started = time.monotonic()

    def phase(self, text: str) -> None:
        """Announce the step now running (shown on the next progress line)."""
        self.current = text

    def line(self) -> str:
        return f"xcwl {self.label}: {self.current} ({time.monotonic() - self.started:.0f} s)"


@asynccontextmanager
async def reporting(label: str, *, enabled: bool = True, quiet_s: float = 3.0, every_s: float = 5.0,
                    stream: TextIO | None = None) -> AsyncIterator[Progress]:
    """A ``Progress`` whose phase is printed to ``stream`` (stderr) after ``quiet_s`` and then every ``every_s``."""
    progress = Progress(label)
    out = stream or sys.stderr

    async def tick() -> None:
        await asyncio.sleep(quiet_s)
        while True:
            print(progress.line(), file=out, flush=True)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(tick()) if enabled else None
    try:
        yield progress
    finally:
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


def announce(args: object, text: str) -> None:
    """``args.progress.phase(text)`` when the command runs under ``reporting`` (benches get ``args.progress``)."""
    progress = getattr(args, "progress", None)
    if isinstance(progress, Progress):
        progress.phase(text)
