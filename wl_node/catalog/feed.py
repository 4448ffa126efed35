"""The exporter's offer feed: opaque cursors, pages filtered by export delay, and change notifications.

A cursor is ``base64url(json)`` of ``{"s": seq, "w": watermark_us, "i": watermark_offer_id, "f": fingerprint}``:

* ``s``: the highest ``change_sequence`` the peer has been served (changes after it are new);
* ``w``/``i``: the export-delay watermark: every offer created at or before ``(w, i)`` (in ``(created_at,
  offer_id)`` order) that was eligible has been served;
* ``f``: the fingerprint of the terms (importer, export delay, feed epoch) the cursor was made under. A cursor
  with another fingerprint is refused with FAILED_PRECONDITION ``CURSOR_EXPIRED``: the importer restarts with a
  full sync, so offers that a policy change made visible again (or invisible) are resent (or swept).

One page at time ``now`` with ``cutoff = now - export_delay``:

1. *matured*: offers with ``change_sequence <= s`` created after the watermark and at or before ``cutoff``: they
   were skipped earlier because too young and have become eligible since; served in ``(created_at, offer_id)``
   order, moving the watermark.
2. *new changes*: offers with ``change_sequence > s`` created at or before ``cutoff``, in sequence order; younger
   ones are skipped (step 1 serves them once they mature), so a young offer never blocks later changes.

A withdrawn offer is served as a tombstone (no fields). ``WatchOffers`` uses ``FeedNotifier`` to push the latest
sequence on every commit, and ``next_maturity`` to wake when a skipped offer becomes eligible.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from xwl_runtime.errors import FailedPrecondition, InvalidArgument

from .tables import offer_feed, offers
from .visibility import ExportGrant

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)

MAX_CURSOR_CHARS = 1024
"""An encoded cursor is ~150 characters; anything longer is refused unread."""


@dataclass(frozen=True)
class Cursor:
    """A position in one peer's view of the feed (see the module docstring).

    ``watermark_id`` None means "every offer created at or before ``watermark``"; a string means "up to
    ``(watermark, watermark_id)``" (a matured batch that filled a page).
    """

    seq: int = 0
    watermark: dt.datetime = EPOCH
    watermark_id: str | None = None
    fingerprint: str = ""

    def encode(self) -> str:
        body = {"s": self.seq, "w": (self.watermark - EPOCH) // _US, "i": self.watermark_id, "f": self.fingerprint}
        return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, grant: ExportGrant) -> Cursor:
        """The cursor a peer sent back; empty means a full sync from the start."""
        if not text:
            return cls(fingerprint=grant.fingerprint)
        if len(text) > MAX_CURSOR_CHARS:  # before decoding: a cursor this exporter wrote is far shorter
            raise InvalidArgument.field("cursor", "not a cursor returned by this exporter")
        try:
            body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            wid = body["i"]
            cursor = cls(int(body["s"]), EPOCH + int(body["w"]) * _US, None if wid is None else str(wid),
                         str(body["f"]))
        except (ValueError, KeyError, TypeError, binascii.Error, OverflowError) as err:
            raise InvalidArgument.field("cursor", "not a cursor returned by this exporter") from err
        if cursor.seq < 0:
            raise InvalidArgument.field("cursor", "not a cursor returned by this exporter")
        if cursor.fingerprint != grant.fingerprint:
            raise FailedPrecondition("the visibility terms changed since this cursor; restart with a full sync",
                                     reason="CURSOR_EXPIRED")
        return cursor


@dataclass
class Page:
    """Rows to serve (current ``offers`` rows, withdrawn ones are tombstones) and where the peer resumes."""

    rows: Sequence[Any]
    next_cursor: Cursor
    has_more: bool


# What a page needs: the stored message plus the columns that are the truth for stock and revision.
_COLUMNS = [offers.c.offer_id, offers.c.change_sequence, offers.c.withdrawn, offers.c.stock, offers.c.revision,
            offers.c.payload]


def _after_watermark(cursor: Cursor) -> sa.ColumnElement[bool]:
    created = offers.c.created_at
    if cursor.watermark_id is None:
        return created > cursor.watermark
    return sa.or_(created > cursor.watermark,
                  sa.and_(created == cursor.watermark, offers.c.offer_id > cursor.watermark_id))


async def read_page(conn: AsyncConnection, grant: ExportGrant, cursor: Cursor, now: Callable[[], dt.datetime],
                    limit: int) -> Page:
    """One page of the feed for ``grant``'s peer, from ``cursor`` (see the module docstring); ``now`` is read once,
    after the feed's latest sequence."""
    # Read first: every sequence <= latest is committed (writers hold the counter row until commit), so serving
    # up to it and resuming after it skips nothing, even when a statement below sees a newer snapshot.
    latest = await latest_sequence(conn)
    # The time after that read: every offer up to ``latest`` was created before it. A time taken before (when the
    # request arrived, while it waited for the store) would call an offer committed meanwhile "created after the
    # cutoff" and skip it with nothing left to announce it: the peer's stream has already reported ``latest``.
    cutoff = now() - grant.delay
    rows: list[Any] = []
    # Even with no delay: an offer created after ``now`` was read but committed before ``latest`` was is skipped
    # by step 2 (created after the cutoff) and caught here on the next page.
    if cursor.seq > 0 and cutoff >= cursor.watermark:
        matured = (await conn.execute(
            sa.select(*_COLUMNS, offers.c.created_at)
            .where(offers.c.change_sequence <= cursor.seq, _after_watermark(cursor), offers.c.created_at <= cutoff)
            .order_by(offers.c.created_at, offers.c.offer_id).limit(limit + 1)
        )).all()
        if len(matured) > limit:
            last = matured[limit - 1]
            return Page(matured[:limit], Cursor(cursor.seq, last.created_at, last.offer_id, grant.fingerprint), True)
        rows.extend(matured)
    if cutoff >= cursor.watermark:
        watermark, watermark_id = cutoff, None
    else:  # the clock stepped back: keep the watermark where it was
        watermark, watermark_id = cursor.watermark, cursor.watermark_id
    room = limit - len(rows)
    changes = (await conn.execute(
        sa.select(*_COLUMNS)
        .where(offers.c.change_sequence > cursor.seq, offers.c.change_sequence <= latest,
               offers.c.created_at <= cutoff)
        .order_by(offers.c.change_sequence).limit(room + 1)
    )).all()
    has_more = len(changes) > room
    changes = changes[:room]
    rows.extend(changes)
    # Young offers skipped up to the new sequence are all created after the cutoff: the watermark catches them.
    if has_more:
        seq = changes[-1].change_sequence if changes else cursor.seq
    else:
        seq = max(latest, cursor.seq)
    return Page(rows, Cursor(seq, watermark, watermark_id, grant.fingerprint), has_more)


async def latest_sequence(conn: AsyncConnection) -> int:
    """The last sequence handed out (committed or not yet: callers only compare with it)."""
    return int(await conn.scalar(sa.select(offer_feed.c.last_sequence).where(offer_feed.c.feed_id == 1)) or 0)


async def next_maturity(conn: AsyncConnection, grant: ExportGrant, now: dt.datetime) -> dt.datetime | None:
    """When the next offer still too young for ``grant``'s peer becomes eligible, or None if there is none."""
    if not grant.delay:
        return None
    first: dt.datetime | str | None = await conn.scalar(
        sa.select(sa.func.min(offers.c.created_at)).where(offers.c.created_at > now - grant.delay)
    )
    if first is None:
        return None
    if isinstance(first, str):  # aggregate results skip the column type on SQLite
        first = dt.datetime.fromisoformat(first)
    if first.tzinfo is None:
        first = first.replace(tzinfo=dt.UTC)
    return first + grant.delay


class FeedNotifier:
    """The latest committed feed sequence, and a way to wait for a newer one (one per node process)."""

    def __init__(self) -> None:
        self._latest = 0
        self._changed = asyncio.Event()
        self.closing = False
        """Set when the node starts stopping: open WatchOffers streams end at their next wake."""

    def close(self) -> None:
        """The node is stopping: wake every waiter once more, so open streams end now rather than at the end of the
        server's grace period (their importers fall back to pulls, as on any broken stream)."""
        self.closing = True
        self.poke()

    @property
    def latest(self) -> int:
        return self._latest

    def bump(self, sequence: int) -> None:
        """Called after a commit that wrote ``sequence``; wakes every waiter."""
        if sequence > self._latest:
            self._latest = sequence
        self.poke()

    def poke(self) -> None:
        """Wake every waiter (e.g. the policy changed and streams must re-check who may watch)."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def next_change(self) -> asyncio.Event:
        """The event the next bump/poke sets (to wait on it with other events, through a clock)."""
        return self._changed

    async def wait(self, timeout: float) -> None:
        """Return at the next bump/poke, or after ``timeout`` seconds."""
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
