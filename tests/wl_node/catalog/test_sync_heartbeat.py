"""The sync job is quiet while a peer's WatchOffers stream is healthy, and pulls when a heartbeat is missed.

Two real nodes over mTLS with real stores; the exporter's heartbeat period and the importer's stream timeout are
shortened so each case takes about a second.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from tests.support.pki import PkiFixture
from tests.wl_node.catalog.helpers import DbFactory, eventually, offer
from wl_node.cadence import IdleCadence
from wl_node.catalog.feed import Cursor, FeedNotifier, read_page
from wl_node.catalog.offers import OfferBook
from wl_node.catalog.sync import CatalogSync, SyncSettings
from wl_node.catalog.tables import imported_offers
from wl_node.catalog.validation import validate_offer
from wl_node.catalog.visibility import export_grant
from xcwl.bench.catalog_nodes import CatalogNode, World, start_node

STREAM_TIMEOUT_S = 0.6
IMPORTER = SyncSettings(poll_interval_s=0.2, stream_timeout_s=STREAM_TIMEOUT_S, fallback_cap_s=0.6,
                        backoff_base_s=0.02, backoff_cap_s=0.2, rpc_timeout_s=5)


async def _world(pki: PkiFixture, dbs: DbFactory, exporter_heartbeat_s: float) -> World:
    w = World()
    cadence = IdleCadence(offer_heartbeat_s=exporter_heartbeat_s)
    a = await start_node("wl-a", dbs("a"), pki.dir, sync_settings=IMPORTER, cadence=cadence)
    w.add_wl(a, "XPY-A", 2)
    try:
        b = await start_node("wl-b", dbs("b"), pki.dir, sync_settings=IMPORTER, cadence=cadence)
    except BaseException:
        await w.close()
        raise
    w.add_wl(b, "XPY-B", 2)
    w.pair("wl-a", "wl-b", fx_rate="2", fx_version=1)
    await w.publish()
    return w


@pytest.fixture
async def beating(pki: PkiFixture, dbs: DbFactory) -> AsyncIterator[World]:
    """The exporter beats every 0.1 s: the importer's streams stay healthy."""
    w = await _world(pki, dbs, exporter_heartbeat_s=0.1)
    try:
        yield w
    finally:
        await w.close()


@pytest.fixture
async def silent(pki: PkiFixture, dbs: DbFactory) -> AsyncIterator[World]:
    """The exporter never beats (an hour): the importer sees its stream go quiet."""
    w = await _world(pki, dbs, exporter_heartbeat_s=3600.0)
    try:
        yield w
    finally:
        await w.close()


async def _imported(node: CatalogNode, offer_id: str) -> bool:
    async with node.engine.connect() as conn:
        found = await conn.scalar(sa.select(imported_offers.c.imported_offer_id)
                                  .where(imported_offers.c.source_offer_id == offer_id))
    return found is not None


async def _settled(sync: CatalogSync) -> None:
    """Wait until the first pulls (initial sync, the stream's first announcement) are over."""
    while True:
        before = sync.stats.pulls
        await asyncio.sleep(0.2)
        if sync.stats.pulls == before:
            return


async def _publish(book: OfferBook, offer_id: str) -> None:
    await book.publish(validate_offer(offer(offer_id, "10.00", currency="XPY-A"), currency="XPY-A", decimals=2))


async def test_no_pull_while_the_stream_beats_and_a_change_still_arrives_at_once(beating: World) -> None:
    a, b = beating.nodes["wl-a"], beating.nodes["wl-b"]
    await _publish(a.catalog.book, "o-1")
    await eventually(lambda: _imported(b, "o-1"))
    sync = b.catalog.sync
    await _settled(sync)
    pulls = sync.stats.pulls

    # Two and a half stream timeouts of idle: about 15 heartbeats, and no pull at all.
    await asyncio.sleep(2.5 * STREAM_TIMEOUT_S)
    assert sync.stats.pulls == pulls
    assert sync.stats.missed_heartbeats == 0
    assert sync.lags()["wl-a"] < 0.5  # each beat with nothing pending proves the copy current (beats: 0.1 s)

    await _publish(a.catalog.book, "o-2")
    took = await eventually(lambda: _imported(b, "o-2"), timeout=1.0)
    assert took < STREAM_TIMEOUT_S  # woken by the stream, not by a timer
    assert sync.stats.pulls > pulls


async def test_a_missed_heartbeat_starts_a_pull_within_one_timeout(silent: World) -> None:
    a, b = silent.nodes["wl-a"], silent.nodes["wl-b"]
    await _publish(a.catalog.book, "o-1")  # announced on the stream: the initial sync and the change arrive
    await eventually(lambda: _imported(b, "o-1"))
    sync = b.catalog.sync
    await _settled(sync)
    missed = sync.stats.missed_heartbeats
    first_lag = sync.lags()["wl-a"]
    await asyncio.sleep(0.1)
    assert sync.lags()["wl-a"] >= first_lag + 0.09  # no beat since the last pull: the proven currency only ages

    # A commit the stream never announces (a notifier nobody watches): only the missed heartbeat can find it.
    assert a.catalog.accounts is not None
    muted = OfferBook(a.engine, a.catalog.book._clock, FeedNotifier(), "wl-a",  # noqa: SLF001 - same clock
                      a.catalog.accounts)
    await _publish(muted, "o-2")
    took = await eventually(lambda: _imported(b, "o-2"), timeout=STREAM_TIMEOUT_S + 1.0)
    assert took <= STREAM_TIMEOUT_S + 0.5
    assert sync.stats.missed_heartbeats > missed
    assert sync.lags()["wl-a"] < STREAM_TIMEOUT_S  # the pull that found o-2 reached the exporter's head


async def test_a_page_serves_an_offer_committed_while_the_request_waited_for_the_store(beating: World) -> None:
    """The exporter reads the time for a page after the feed's latest sequence: an offer committed between the
    request's arrival and that read is in the page, not skipped as "created later" behind a cursor that already
    passed its sequence (nothing would announce it again while the stream only beats)."""
    a = beating.nodes["wl-a"]
    await _publish(a.catalog.book, "o-1")
    grant = export_grant(a.state, "wl-b")
    async with a.engine.connect() as conn:
        first = await read_page(conn, grant, Cursor.decode("", grant), a.catalog.book._clock.now, 100)  # noqa: SLF001
    assert [r.offer_id for r in first.rows] == ["o-1"]

    arrived = a.catalog.book._clock.now() - dt.timedelta(milliseconds=50)  # noqa: SLF001 - the request came in
    await _publish(a.catalog.book, "o-2")  # committed while that request waited for a connection
    async with a.engine.connect() as conn:
        late = await read_page(conn, grant, first.next_cursor, lambda: arrived, 100)
        page = await read_page(conn, grant, first.next_cursor, a.catalog.book._clock.now, 100)  # noqa: SLF001
    # With the arrival time the page would skip o-2 while moving the cursor past its sequence:
    assert late.rows == [] and late.next_cursor.seq == page.next_cursor.seq
    assert [r.offer_id for r in page.rows] == ["o-2"]
