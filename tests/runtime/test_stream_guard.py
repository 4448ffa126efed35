"""StreamGuard: a revocation ends an open stream while it waits for its next item; a snapshot that revokes nobody
does not end it; the watcher task lives exactly as long as some guarded stream is open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from xwl_runtime.errors import Unauthenticated
from xwl_runtime.peer_guard import REVOKED_REASON, PeerCertificate, StreamGuard


class _Snapshots:
    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self._changed = asyncio.Event()

    async def check(self, peer: PeerCertificate) -> None:
        return None

    def is_revoked(self, peer: PeerCertificate) -> bool:
        return peer.serial in self.revoked

    def changed(self) -> asyncio.Event:
        return self._changed

    def install(self, *revoked: str) -> None:
        self.revoked = set(revoked)
        self._changed.set()
        self._changed = asyncio.Event()


def _peer(serial: str) -> PeerCertificate:
    return PeerCertificate(None, serial, "f" * 64)


async def _forever(first: int) -> AsyncIterator[int]:
    yield first
    await asyncio.Event().wait()
    yield -1


def _watchers() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "stream-guard" and not t.done()]


async def test_revocation_ends_a_waiting_stream_and_the_watcher_ends_with_the_last_stream() -> None:
    snapshots = _Snapshots()
    guard = StreamGuard(snapshots)
    a, b = guard.guard(_peer("aa"), _forever(1)), guard.guard(_peer("bb"), _forever(2))
    assert (await anext(a), await anext(b)) == (1, 2)
    waiting_a, waiting_b = asyncio.ensure_future(anext(a)), asyncio.ensure_future(anext(b))
    await asyncio.sleep(0.01)
    assert len(_watchers()) == 1
    snapshots.install()  # revokes nobody: both streams keep waiting
    await asyncio.sleep(0.01)
    assert not waiting_a.done() and not waiting_b.done()
    snapshots.install("aa")
    with pytest.raises(Unauthenticated) as ended:
        await asyncio.wait_for(waiting_a, 2)
    assert ended.value.reason == REVOKED_REASON
    assert not waiting_b.done() and len(_watchers()) == 1
    waiting_b.cancel()
    await asyncio.gather(waiting_b, return_exceptions=True)
    await b.aclose()
    await asyncio.sleep(0)
    assert _watchers() == []
