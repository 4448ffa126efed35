"""The policy agent inside a real node (build_node) against a scripted PolicyService over mTLS."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from tests.support.pki import PkiFixture
from tests.wl_node.conftest import NOT_SERVING, SERVING, WL, eventually, health_status, node_settings
from tests.wl_node.fake_cp import FakeCp, ScriptedPolicyService, make_view, start_fake_cp
from wl_node.app import build_node
from wl_node.cadence import IdleCadence
from wl_node.cp_channel import CpChannel, cp_channel_factory
from wl_node.policy.agent import PolicyAgent
from wl_node.policy.lkg import LastKnownGoodStore
from wl_node.policy.state import PolicyState
from xwl_runtime.clock import ManualClock, SystemClock
from xwl_runtime.identity import Identity


async def test_before_any_view_the_node_is_not_serving(tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp) -> None:
    app = await build_node(node_settings(tmp_path, pki, fake_cp.target))
    try:
        await eventually(lambda: fake_cp.service.open_streams == 1)
        assert app.state.current() is None
        assert await health_status(pki, app.port) == NOT_SERVING
        assert fake_cp.service.seen.watches[0].known_version == 0
        assert fake_cp.service.seen.watches[0].wl_id == WL
    finally:
        await app.stop(0)


async def test_initial_snapshot_is_applied_persisted_reported_and_node_serves(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    fake_cp.service.view = make_view(WL, 1)
    settings = node_settings(tmp_path, pki, fake_cp.target)
    app = await build_node(settings)
    try:
        await eventually(lambda: len(fake_cp.service.seen.reports) == 1)
        report = fake_cp.service.seen.reports[0]
        assert (report.applied_version, report.rejected_version, report.error) == (1, 0, "")
        assert abs(report.apply_time.ToDatetime(dt.UTC) - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
        assert app.state.version == 1 and app.state.stream_connected
        await eventually(lambda: app.agent.cp_version == 1)  # the CP's answer reached the node
        assert await health_status(pki, app.port) == SERVING
        persisted = LastKnownGoodStore(settings.state_dir, WL).load()
        assert persisted is not None
        assert (persisted.view.wl_id, persisted.view.version) == (WL, 1)
        assert persisted.confirmed_at == app.state.confirmed_at
    finally:
        await app.stop(0)


async def test_pushed_change_is_applied_once_and_reported(tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp) -> None:
    fake_cp.service.view = make_view(WL, 1)
    app = await build_node(node_settings(tmp_path, pki, fake_cp.target))
    seen: list[int] = []

    async def listener(view) -> None:  # type: ignore[no-untyped-def]
        seen.append(view.version)

    try:
        await eventually(lambda: app.state.version == 1)
        app.state.add_listener(listener)
        fake_cp.service.push(make_view(WL, 2, fx="3.1"))
        await eventually(lambda: [r.applied_version for r in fake_cp.service.seen.reports] == [1, 2])
        assert seen == [2]
        assert app.state.pair("wl-b").fx_rate == "3.1"
    finally:
        await app.stop(0)


async def test_same_version_twice_changes_nothing(tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp) -> None:
    fake_cp.service.view = make_view(WL, 1)
    settings = node_settings(tmp_path, pki, fake_cp.target)
    app = await build_node(settings)
    calls: list[int] = []

    async def listener(view) -> None:  # type: ignore[no-untyped-def]
        calls.append(view.version)

    lkg = LastKnownGoodStore(settings.state_dir, WL).path
    try:
        await eventually(lambda: len(fake_cp.service.seen.reports) == 1)
        app.state.add_listener(listener)
        mtime = lkg.stat().st_mtime_ns
        content = lkg.read_bytes()
        first_confirmed = app.state.confirmed_at
        confirmations: list[object] = []

        async def observer() -> None:
            confirmations.append(app.state.confirmed_at)

        app.agent.add_observer(observer)
        fake_cp.service.push(make_view(WL, 1, fx="9.9"))  # same version, even with different content
        fake_cp.service.push(make_view(WL, 1))
        fake_cp.service.heartbeat()
        await eventually(lambda: len(confirmations) == 3)  # each of the three only confirmed the version
        assert app.state.confirmed_at > first_confirmed
        assert calls == []
        assert app.state.pair("wl-b").fx_rate == "2.5"
        assert lkg.stat().st_mtime_ns == mtime and lkg.read_bytes() == content
        assert len(fake_cp.service.seen.reports) == 1  # nothing new to report
    finally:
        await app.stop(0)


async def test_invalid_view_is_rejected_and_reported_and_the_old_one_stays(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    fake_cp.service.view = make_view(WL, 1)
    settings = node_settings(tmp_path, pki, fake_cp.target)
    app = await build_node(settings)
    try:
        await eventually(lambda: len(fake_cp.service.seen.reports) == 1)
        bad = make_view(WL, 2)
        bad.pairs[0].fx_rate = "-1"
        fake_cp.service.push(bad)
        await eventually(lambda: len(fake_cp.service.seen.reports) == 2)
        report = fake_cp.service.seen.reports[1]
        assert (report.applied_version, report.rejected_version) == (1, 2)
        assert "pairs[0].fx_rate" in report.error
        assert app.state.version == 1 and app.state.pair("wl-b").fx_rate == "2.5"
        assert LastKnownGoodStore(settings.state_dir, WL).load().view.version == 1
        assert await health_status(pki, app.port) == SERVING
        # The same bad version again is not re-validated nor re-reported; a good next version recovers.
        fake_cp.service.push(bad)
        fake_cp.service.push(make_view(WL, 3))
        await eventually(lambda: app.state.version == 3)
        await eventually(lambda: len(fake_cp.service.seen.reports) == 3)
        assert (fake_cp.service.seen.reports[2].applied_version, fake_cp.service.seen.reports[2].rejected_version) \
            == (3, 0)
    finally:
        await app.stop(0)


async def test_a_view_arriving_by_pull_and_stream_at_once_is_reported_once(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    """The node starts with the stream and the pull racing; both deliver version 2 while the CP is slow to take the
    report: the CP hears "applied 2" once, and a change made while a report is in flight is reported after it."""
    fake_cp.service.view = make_view(WL, 1)
    app = await build_node(node_settings(tmp_path, pki, fake_cp.target))
    try:
        await eventually(lambda: len(fake_cp.service.seen.reports) == 1 and app.state.stream_connected)
        fake_cp.service.report_delay_s = 0.3
        fake_cp.service.view = make_view(WL, 2)  # what the pull will fetch
        pulled = asyncio.create_task(app.agent.pull_once())
        await eventually(lambda: app.state.version == 2)  # applied; its report is now in flight
        fake_cp.service.push(make_view(WL, 2))  # the stream delivers the same version meanwhile
        bad = make_view(WL, 3)
        bad.pairs[0].fx_rate = "-1"
        fake_cp.service.push(bad)  # and a change while that report is still in flight
        assert await pulled
        await eventually(lambda: len(fake_cp.service.seen.reports) >= 3)
        await asyncio.sleep(0.5)  # a duplicate would have landed by now
        assert [(r.applied_version, r.rejected_version) for r in fake_cp.service.seen.reports] \
            == [(1, 0), (2, 0), (2, 3)]
    finally:
        await app.stop(0)


async def test_stream_down_pulls_every_ttl_with_known_version(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    fake_cp.service.view = make_view(WL, 1)
    fake_cp.service.refuse_watch = True  # CP reachable, stream refused: only the pull fallback works
    app = await build_node(node_settings(tmp_path, pki, fake_cp.target))
    try:
        await eventually(lambda: app.state.version == 1)
        assert not app.state.stream_connected
        await eventually(lambda: len(fake_cp.service.seen.pulls) >= 4)
        confirmed = app.state.confirmed_at
        await eventually(lambda: app.state.confirmed_at > confirmed)  # not_modified confirms
        times = [t for t, _ in fake_cp.service.seen.pulls]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert all(0.29 <= g <= 0.8 for g in gaps), gaps  # TTL 0.3 s
        assert [r.known_version for _, r in fake_cp.service.seen.pulls[:3]] == [0, 1, 1]
        # A change at the CP is picked up by the next pull, within one TTL.
        fake_cp.service.view = make_view(WL, 2)
        took = await eventually(lambda: app.state.version == 2)
        assert took <= 0.3 + 0.25
        assert await health_status(pki, app.port) == SERVING
    finally:
        await app.stop(0)


async def test_cp_gone_node_keeps_serving_then_converges_within_one_ttl(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    fake_cp.service.view = make_view(WL, 1)
    app = await build_node(node_settings(tmp_path, pki, fake_cp.target))
    try:
        await eventually(lambda: app.state.stream_connected and app.state.version == 1)
        port = fake_cp.port
        await fake_cp.stop()
        await eventually(lambda: not app.state.stream_connected)
        assert app.state.version == 1
        assert await health_status(pki, app.port) == SERVING
        # The CP comes back, but refusing streams: only the TTL pull can bring the new version.
        service = ScriptedPolicyService(make_view(WL, 2))
        service.refuse_watch = True
        back = await start_fake_cp(pki.material(Identity.cp()), service, port=port)
        try:
            took = await eventually(lambda: app.state.version == 2)
            assert took <= 0.3 + 0.5
            assert [r.known_version for _, r in service.seen.pulls][:1] == [1]
            await eventually(lambda: [r.applied_version for r in service.seen.reports][-1:] == [2])
            service.refuse_watch = False
            await eventually(lambda: app.state.stream_connected)
            assert service.seen.watches[-1].known_version == 2
        finally:
            await back.stop()
    finally:
        await app.stop(0)


async def test_restart_with_cp_down_starts_from_the_persisted_view(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    fake_cp.service.view = make_view(WL, 4)
    settings = node_settings(tmp_path, pki, fake_cp.target)
    first = await build_node(settings)
    await eventually(lambda: first.state.version == 4)
    confirmed = first.state.confirmed_at
    await first.stop(0)
    await fake_cp.stop()

    second = await build_node(settings)
    try:
        assert second.state.version == 4  # before any CP contact
        assert second.state.confirmed_at == confirmed
        assert second.state.pair("wl-b") is not None
        assert await health_status(pki, second.port) == SERVING
        assert not second.state.stream_connected
    finally:
        await second.stop(0)


async def test_view_older_than_max_staleness_makes_the_node_not_serving(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    clock = ManualClock(dt.datetime.now(dt.UTC))
    fake_cp.service.view = make_view(WL, 1)
    settings = node_settings(tmp_path, pki, fake_cp.target, policy_max_staleness=dt.timedelta(minutes=5),
                             cadence=IdleCadence(health_s=0.2))  # the periodic health check, quickened
    app = await build_node(settings, clock)
    try:
        await eventually(lambda: app.state.version == 1)
        await eventually(lambda: app.health.serving)  # published after the view's listeners ran
        assert await health_status(pki, app.port) == SERVING
        clock.advance(5 * 60 + 1)
        # The periodic loop notices without any event from the CP.
        await eventually(lambda: not app.health.serving, timeout=3)
        assert await health_status(pki, app.port) == NOT_SERVING
        fake_cp.service.heartbeat()  # the CP confirms the version: fresh again
        await eventually(lambda: app.health.serving, timeout=3)
        assert await health_status(pki, app.port) == SERVING
    finally:
        await app.stop(0)


async def test_heartbeat_announcing_a_newer_version_triggers_a_pull(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    fake_cp.service.view = make_view(WL, 1)
    settings = node_settings(tmp_path, pki, fake_cp.target, policy_pull_interval=dt.timedelta(seconds=30))
    app = await build_node(settings)
    try:
        await eventually(lambda: app.state.version == 1)
        fake_cp.service.view = make_view(WL, 2)  # changed without a snapshot on the stream
        fake_cp.service.heartbeat(version=2)
        await eventually(lambda: app.state.version == 2, timeout=2)
        assert [r.known_version for _, r in fake_cp.service.seen.pulls] == [1]
    finally:
        await app.stop(0)


async def test_insecure_dev_node_talks_plaintext_with_its_dev_identity(tmp_path: Path, pki: PkiFixture) -> None:
    cp = await start_fake_cp(None, ScriptedPolicyService(make_view(WL, 1)))
    try:
        app = await build_node(node_settings(tmp_path, pki, cp.target, insecure_dev=True))
        try:
            await eventually(lambda: len(cp.service.seen.reports) == 1)
            assert app.state.version == 1
        finally:
            await app.stop(0)
    finally:
        await cp.stop()


async def test_a_failed_report_is_resent_after_the_next_contact(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    fake_cp.service.view = make_view(WL, 1)
    fake_cp.service.fail_reports = 1
    app = await build_node(node_settings(tmp_path, pki, fake_cp.target))
    try:
        await eventually(lambda: app.state.version == 1)
        await eventually(lambda: fake_cp.service.fail_reports == 0)  # the report was attempted and refused
        assert fake_cp.service.seen.reports == []
        fake_cp.service.heartbeat()
        await eventually(lambda: len(fake_cp.service.seen.reports) == 1)
        assert fake_cp.service.seen.reports[0].applied_version == 1
    finally:
        await app.stop(0)


async def test_a_restarted_node_counts_staleness_from_the_persisted_confirmation(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    clock = ManualClock(dt.datetime.now(dt.UTC))
    fake_cp.service.view = make_view(WL, 1)
    settings = node_settings(tmp_path, pki, fake_cp.target, policy_max_staleness=dt.timedelta(minutes=5))
    first = await build_node(settings, clock)
    await eventually(lambda: first.state.version == 1)
    await first.stop(0)
    await fake_cp.stop()

    clock.advance(5 * 60 + 1)  # the node was down (and the CP unreachable) longer than allowed
    second = await build_node(settings, clock)
    try:
        assert second.state.version == 1
        assert await health_status(pki, second.port) == NOT_SERVING
    finally:
        await second.stop(0)


async def test_a_corrupt_last_known_good_file_is_set_aside(tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp) -> None:
    settings = node_settings(tmp_path, pki, fake_cp.target)
    lkg = LastKnownGoodStore(settings.state_dir, WL)
    lkg.path.parent.mkdir(parents=True)
    lkg.path.write_text('{"format": "xcwl.policy-lkg/1", "truncated')
    app = await build_node(settings)
    try:
        assert app.state.current() is None
        assert lkg.path.with_suffix(".corrupt").exists()
        fake_cp.service.push(make_view(WL, 2))
        await eventually(lambda: app.state.version == 2)
        # Served first, persisted right after (before the report to the CP).
        await eventually(lambda: (persisted := lkg.load()) is not None and persisted.view.version == 2)
    finally:
        await app.stop(0)


class _GatedLkg(LastKnownGoodStore):
    """A last-known-good store whose writes wait for the test to open the gate."""

    def __init__(self, state_dir: Path, wl_id: str) -> None:
        super().__init__(state_dir, wl_id)
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def save(self, view, confirmed_at, now) -> None:  # type: ignore[no-untyped-def]
        self.started.set()
        await self.gate.wait()
        await super().save(view, confirmed_at, now)


async def test_a_view_is_served_before_its_file_is_written_and_reported_only_after(
    tmp_path: Path, pki: PkiFixture, fake_cp: FakeCp
) -> None:
    fake_cp.service.view = make_view(WL, 1)
    settings = node_settings(tmp_path, pki, fake_cp.target)
    state = PolicyState(WL, SystemClock(), settings.policy_max_staleness)
    identity = Identity.wl(WL)
    channel = CpChannel(cp_channel_factory(settings.cp_target, reconnect_cap_s=1.0), pki.material(identity),
                        identity=identity)
    lkg = _GatedLkg(settings.state_dir, WL)
    agent = PolicyAgent(settings, state, channel, SystemClock(), lkg)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        await asyncio.wait_for(lkg.started.wait(), 5)
        assert state.version == 1  # served while the write is still pending
        await asyncio.sleep(0.2)
        assert fake_cp.service.seen.reports == [] and lkg.load() is None  # not durable: not reported
        lkg.gate.set()
        await eventually(lambda: len(fake_cp.service.seen.reports) == 1)
        assert fake_cp.service.seen.reports[0].applied_version == 1
        persisted = lkg.load()
        assert persisted is not None and persisted.view.version == 1
    finally:
        lkg.gate.set()
        stop.set()
        await running
        await channel.close()
