"""``xwl_runtime.clock``: loops wait through their clock, so a ``ManualClock`` drives them without real waiting.

The manual clock's waits wake exactly when ``advance`` passes their deadline (in deadline order) or when an event
is set; the system clock's waits are real. The last test drives a real loop (the node's health loop over a real
``PolicyState``) through a view going stale: nothing happens in real time, everything when the test advances."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from tests.wl_node.fake_cp import make_view
from wl_node.health import NodeHealth
from wl_node.policy.state import PolicyState
from xwl_runtime.clock import ManualClock, SystemClock


async def _parked(clock: ManualClock, count: int) -> None:
    for _ in range(100):
        if clock.sleepers == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{clock.sleepers} waits parked, expected {count}")


async def test_manual_sleeps_wake_when_the_clock_passes_their_deadline_in_order() -> None:
    clock = ManualClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 30)), asyncio.create_task(sleeper("early", 10))]
    await _parked(clock, 2)
    clock.advance(9.9)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(0.1)
    await asyncio.sleep(0)
    assert woke == ["early"]
    clock.advance(100)
    await asyncio.gather(*tasks)
    assert woke == ["early", "late"]
    assert clock.sleepers == 0


async def test_manual_wait_any_returns_on_an_event_or_on_its_timeout() -> None:
    clock = ManualClock()
    stop, wake = asyncio.Event(), asyncio.Event()

    waiting = asyncio.create_task(clock.wait_any(stop, wake, timeout=60))
    await _parked(clock, 1)
    wake.set()
    await asyncio.wait_for(waiting, 1)  # the event, with no time passing
    assert clock.sleepers == 0  # its timer went with it

    wake.clear()
    waiting = asyncio.create_task(clock.wait_any(stop, wake, timeout=60))
    await _parked(clock, 1)
    clock.advance(60)
    await asyncio.wait_for(waiting, 1)
    assert not stop.is_set() and not wake.is_set()


async def test_system_wait_any_is_real_time() -> None:
    clock = SystemClock()
    stop = asyncio.Event()
    started = time.monotonic()
    await clock.wait_any(stop, timeout=0.05)
    assert time.monotonic() - started >= 0.045
    stop.set()
    started = time.monotonic()
    await clock.wait_any(stop, timeout=30)
    assert time.monotonic() - started < 1


async def test_a_manual_clock_drives_the_health_loop_through_a_view_going_stale() -> None:
    clock = ManualClock()
    state = PolicyState("wl-a", clock, dt.timedelta(seconds=60))
    await state.apply(make_view("wl-a", 1), confirmed_at=clock.now())
    published: list[bool] = []

    async def set_serving(serving: bool) -> None:
        published.append(serving)

    health = NodeHealth(state, set_serving, interval_s=5, clock=clock)
    stop = asyncio.Event()
    loop = asyncio.create_task(health.run(stop))
    try:
        await _parked(clock, 1)
        assert published == [True]
        clock.advance(55)  # within the staleness bound: evaluated, unchanged
        await _parked(clock, 1)
        assert published == [True]
        clock.advance(10)  # 65 s without a confirmation: stale at the next evaluation
        await _parked(clock, 1)
        assert published == [True, False]
        state.confirm(1)  # the CP confirmed the version again
        clock.advance(5)
        await _parked(clock, 1)
        assert published == [True, False, True]
    finally:
        stop.set()
        await asyncio.wait_for(loop, 1)
