"""The one bounded wait of the tests: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], *, timeout: float = 5.0,
                     interval: float = 0.01) -> float:
    """Poll ``predicate`` (sync or async) every ``interval`` seconds until it is true; returns the seconds it took;
    fails after ``timeout``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return loop.time() - start
        if loop.time() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
