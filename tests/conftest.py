"""Fixtures every test package uses: a fresh PKI and the two real stores (SQLite and PostgreSQL).

Also three guards for a loaded CI machine. A coroutine test runs under an asyncio deadline a little shorter than its
pytest-timeout: pytest-timeout's SIGALRM raises inside whatever the event loop is running, and asyncio's callback
handler swallows it, so a stuck coroutine test would otherwise never end. And a failure is printed the moment it
happens, so a run cut short still shows every failure before the cut. And no task a coroutine test started outlives
it by ignoring cancellation (see ``_no_task_outlives_its_test``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.databases import fresh_postgres_database, sqlite_url
from tests.support.pki import PkiFixture, make_test_pki

_DEADLINE_MARGIN = 10.0  # seconds left to the pytest-timeout for the test's own clean-up after the asyncio deadline


def _with_deadline(test: Callable[..., Coroutine[Any, Any, Any]], seconds: float) -> Callable[..., Any]:
    @functools.wraps(test)
    async def bounded(*args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(seconds):
                return await test(*args, **kwargs)
        except TimeoutError as exc:
            raise pytest.fail.Exception(f"test still running after its {seconds:.0f} s deadline") from exc

    return bounded


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    default = float(config.getini("timeout") or 0)
    for item in items:
        if not isinstance(item, pytest.Function) or not inspect.iscoroutinefunction(item.obj):
            continue
        item.fixturenames.insert(0, "_no_task_outlives_its_test")
        marker = item.get_closest_marker("timeout")
        limit = float(marker.args[0]) if marker is not None and marker.args else default
        if limit > 2 * _DEADLINE_MARGIN:
            item.obj = _with_deadline(item.obj, limit - _DEADLINE_MARGIN)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        print(f"\n--- FAILED {report.nodeid} ({report.when}) ---\n{report.longreprtext}", flush=True)


@pytest.fixture
def pki(tmp_path: Path) -> PkiFixture:
    return make_test_pki(tmp_path / "pki")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def sqlite_db_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


@pytest.fixture
def postgres_db_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url



_LEAK_GRACE_S = 5.0


@pytest.fixture
async def _no_task_outlives_its_test() -> AsyncIterator[None]:
    """Teardown guard for coroutine tests, run after every other fixture's teardown.

    A task still pending then is cancelled, again every 100 ms (asyncio's own shutdown cancels once, and a task whose
    ``finally`` awaits again would hold the loop's close until pytest-timeout). One that survives the grace period is
    a teardown error naming the task and where it waits, instead of a silent hang.
    """
    yield
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    deadline = asyncio.get_running_loop().time() + _LEAK_GRACE_S
    pending = set(left)
    while pending and asyncio.get_running_loop().time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    if pending:
        stuck = [f"{t.get_name()} {t.get_coro()!r} at " + ", ".join(
            f"{f.f_code.co_filename}:{f.f_lineno}" for f in t.get_stack()) for t in pending]
        pytest.fail("tasks ignore cancellation after the test ended:\n  " + "\n  ".join(stuck))
