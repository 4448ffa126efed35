"""The asyncio circuit breaker keeps pybreaker's semantics under concurrency."""

from __future__ import annotations

import asyncio

import pytest

from xwl_runtime.breaker import AsyncCircuitBreaker, BreakerState, CircuitOpenError
from xwl_runtime.clock import ManualClock


class PeerDown(Exception):
    pass


class BusinessRefusal(Exception):
    pass


def _breaker(clock: ManualClock) -> AsyncCircuitBreaker:
    return AsyncCircuitBreaker(
        "wl-b", fail_max=3, reset_timeout_s=5, clock=clock, is_failure=lambda e: isinstance(e, PeerDown)
    )


async def _fail() -> None:
    await asyncio.sleep(0)
    raise PeerDown()


async def _ok() -> str:
    await asyncio.sleep(0)
    return "ok"


async def test_consecutive_failures_open_then_fail_fast() -> None:
    clock = ManualClock()
    breaker = _breaker(clock)
    for _ in range(3):
        with pytest.raises(PeerDown):
            await breaker.call(_fail)
    assert breaker.state is BreakerState.OPEN
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    with pytest.raises(CircuitOpenError):
        await breaker.call(counted)
    assert calls == 0


async def test_business_errors_do_not_count() -> None:
    breaker = _breaker(ManualClock())

    async def refuse() -> None:
        raise BusinessRefusal()

    for _ in range(10):
        with pytest.raises(BusinessRefusal):
            await breaker.call(refuse)
    assert breaker.state is BreakerState.CLOSED


async def test_success_resets_the_consecutive_count() -> None:
    breaker = _breaker(ManualClock())
    for _ in range(2):
        with pytest.raises(PeerDown):
            await breaker.call(_fail)
    assert await breaker.call(_ok) == "ok"
    for _ in range(2):
        with pytest.raises(PeerDown):
            await breaker.call(_fail)
    assert breaker.state is BreakerState.CLOSED


async def test_half_open_admits_exactly_one_concurrent_probe() -> None:
    clock = ManualClock()
    breaker = _breaker(clock)
    for _ in range(3):
        with pytest.raises(PeerDown):
            await breaker.call(_fail)
    clock.advance(5)
    assert breaker.state is BreakerState.HALF_OPEN
    release = asyncio.Event()
    entered = 0

    async def slow_ok() -> str:
        nonlocal entered
        entered += 1
        await release.wait()
        return "ok"

    tasks = [asyncio.create_task(breaker.call(slow_ok)) for _ in range(50)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert entered == 1
    assert sum(1 for r in results if r == "ok") == 1
    assert sum(1 for r in results if isinstance(r, CircuitOpenError)) == 49
    assert breaker.state is BreakerState.CLOSED


async def test_failed_probe_reopens_for_another_timeout() -> None:
    clock = ManualClock()
    breaker = _breaker(clock)
    for _ in range(3):
        with pytest.raises(PeerDown):
            await breaker.call(_fail)
    clock.advance(5)
    with pytest.raises(PeerDown):
        await breaker.call(_fail)
    assert breaker.state is BreakerState.OPEN
    clock.advance(4.9)
    with pytest.raises(CircuitOpenError):
        await breaker.call(_ok)
    clock.advance(0.2)
    assert await breaker.call(_ok) == "ok"


async def test_cancelled_probe_releases_the_slot() -> None:
    clock = ManualClock()
    breaker = _breaker(clock)
    for _ in range(3):
        with pytest.raises(PeerDown):
            await breaker.call(_fail)
    clock.advance(5)
    task = asyncio.create_task(breaker.call(lambda: asyncio.sleep(10)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await breaker.call(_ok) == "ok"


async def test_many_concurrent_calls_through_one_breaker_run_concurrently_and_count_when_they_end() -> None:
    """200 calls in flight at once through one breaker: none waits for another (no lock around the call, unlike
    pybreaker), a success is counted when its awaited call ends, and the failures that end while the circuit is
    closed open it exactly once."""
    clock = ManualClock()
    breaker = _breaker(clock)
    release = asyncio.Event()
    in_flight = 0
    peak = 0

    async def slow(fail: bool) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        if fail:
            raise PeerDown()
        return "ok"

    oks = [asyncio.ensure_future(breaker.call(lambda: slow(False))) for _ in range(100)]
    fails = [asyncio.ensure_future(breaker.call(lambda: slow(True))) for _ in range(100)]
    await asyncio.sleep(0)
    assert peak == 200 and breaker.state is BreakerState.CLOSED  # all admitted, nothing counted before the end
    release.set()
    assert await asyncio.gather(*oks) == ["ok"] * 100
    results = await asyncio.gather(*fails, return_exceptions=True)
    assert all(isinstance(r, PeerDown) for r in results)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        await breaker.call(_ok)
