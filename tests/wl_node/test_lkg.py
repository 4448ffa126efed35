"""The last-known-good file: round trip, atomic replacement, and refusal of anything it cannot trust."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.wl_node.fake_cp import make_view
from wl_node.policy.lkg import FORMAT, LastKnownGoodStore, LkgCorrupt

WL = "wl-a"
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


async def test_round_trip_keeps_the_view_bytes_and_confirmation(tmp_path: Path) -> None:
    store = LastKnownGoodStore(tmp_path / "state", WL)
    assert store.load() is None
    view = make_view(WL, 7)
    await store.save(view, T0, T0 + dt.timedelta(seconds=1))
    loaded = store.load()
    assert loaded is not None
    assert loaded.view == view and loaded.confirmed_at == T0
    doc = json.loads(store.path.read_text())
    assert (doc["format"], doc["wl_id"], doc["version"]) == (FORMAT, WL, 7)
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in store.path.parent.iterdir()] == [store.path.name]  # no temporary file left


async def test_a_newer_save_replaces_the_file(tmp_path: Path) -> None:
    store = LastKnownGoodStore(tmp_path, WL)
    await store.save(make_view(WL, 1), T0, T0)
    await store.save(make_view(WL, 2), T0 + dt.timedelta(minutes=1), T0)
    loaded = store.load()
    assert loaded is not None and loaded.view.version == 2


@pytest.mark.parametrize("damage", ["checksum", "wl", "format", "json", "version", "naive_time"])
async def test_untrustworthy_files_are_refused(tmp_path: Path, damage: str) -> None:
    store = LastKnownGoodStore(tmp_path, WL)
    await store.save(make_view(WL, 1), T0, T0)
    doc = json.loads(store.path.read_text())
    if damage == "checksum":
        doc["sha256"] = "0" * 64
    elif damage == "wl":
        doc["wl_id"] = "wl-b"
    elif damage == "format":
        doc["format"] = "other/9"
    elif damage == "version":
        doc["version"] = 2
    elif damage == "naive_time":
        doc["confirmed_at"] = "2026-03-01T12:00:00"
    text = "{not json" if damage == "json" else json.dumps(doc)
    store.path.write_text(text)
    with pytest.raises(LkgCorrupt):
        store.load()
    moved = store.quarantine()
    assert moved is not None and moved.exists() and store.load() is None
