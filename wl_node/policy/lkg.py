"""The last-known-good policy view on disk, so a node restarted while the CP is down serves what it had.

File ``<state_dir>/policy-lkg-<wl_id>.json`` (format documented in ``docs/node.md``)::

    {"format": "xcwl.policy-lkg/1", "wl_id": "wl-a", "version": 7,
     "confirmed_at": "2026-01-01T00:00:00+00:00", "written_at": "...",
     "sha256": "<hex of the view bytes>", "view": "<base64 of the serialized PolicyView>"}

The view is kept as protobuf bytes (exact, unknown fields preserved) with a checksum; the envelope is JSON so an
operator can see version and confirmation time with ``jq``. Writes are atomic (``xwl_runtime.safe_files``: a fresh
O_EXCL 0600 temporary file in the same directory, fsync, rename, fsync of the directory); a crash leaves either the
old or the new file, never a torn one.

The blocking file work runs on the store's own single worker thread, not on the event loop's default executor:
writes of one store stay in order, and an apply's fsyncs never queue behind unrelated ``to_thread`` work of other
components (nor theirs behind ours).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from google.protobuf.message import DecodeError

from xporty.cp.v1 import policy_pb2
from xwl_runtime.safe_files import PRIVATE_MODE, write_atomically

log = logging.getLogger(__name__)

FORMAT = "xcwl.policy-lkg/1"

T = TypeVar("T")


class LkgCorrupt(Exception):
    """The persisted file exists but cannot be trusted."""


@dataclass(frozen=True)
class PersistedView:
    """A view as it was persisted, with when the CP last confirmed it."""

    view: policy_pb2.PolicyView
    confirmed_at: dt.datetime


class LastKnownGoodStore:
    """Reads and atomically writes one node's last-known-good view."""

    def __init__(self, state_dir: Path, wl_id: str) -> None:
        self.path = Path(state_dir) / f"policy-lkg-{wl_id}.json"
        self._wl_id = wl_id
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    async def _in_worker(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking file work on this store's own thread (created on first use, again after ``close``)."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-lkg")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Let the worker thread go once its queued writes are done (a later call starts a new one)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    async def load_async(self) -> PersistedView | None:
        """``load`` on the store's worker thread."""
        return await self._in_worker(self.load)

    # --- reading -------------------------------------------------------------------------------------------
    def load(self) -> PersistedView | None:
        """The persisted view, None when there is no file; ``LkgCorrupt`` when the file is unusable."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT:
                raise LkgCorrupt(f"{self.path}: unknown format {doc.get('format')!r}")
            if doc.get("wl_id") != self._wl_id:
                raise LkgCorrupt(f"{self.path}: written for WL {doc.get('wl_id')!r}")
            payload = base64.b64decode(doc["view"], validate=True)
            if hashlib.sha256(payload).hexdigest() != doc["sha256"]:
                raise LkgCorrupt(f"{self.path}: checksum mismatch")
            view = policy_pb2.PolicyView.FromString(payload)
            confirmed_at = dt.datetime.fromisoformat(doc["confirmed_at"])
        except (ValueError, KeyError, TypeError, DecodeError) as err:
            raise LkgCorrupt(f"{self.path}: {err}") from err
        if confirmed_at.tzinfo is None:
            raise LkgCorrupt(f"{self.path}: confirmed_at has no timezone")
        if view.version != doc.get("version"):
            raise LkgCorrupt(f"{self.path}: version field disagrees with the view")
        return PersistedView(view, confirmed_at.astimezone(dt.UTC))

    # --- writing -------------------------------------------------------------------------------------------
    async def save(self, view: policy_pb2.PolicyView, confirmed_at: dt.datetime, now: dt.datetime) -> None:
        """Persist ``view`` atomically; returns once the file and its directory entry are fsynced.

        The blocking work (encoding included) runs on the store's worker thread.
        """
        await self._in_worker(self._encode_and_write, view, confirmed_at, now)

    def _encode_and_write(self, view: policy_pb2.PolicyView, confirmed_at: dt.datetime, now: dt.datetime) -> None:
        payload = view.SerializeToString(deterministic=True)
        doc = {
            "format": FORMAT,
            "wl_id": view.wl_id,
            "version": view.version,
            "confirmed_at": confirmed_at.astimezone(dt.UTC).isoformat(),
            "written_at": now.astimezone(dt.UTC).isoformat(),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "view": base64.b64encode(payload).decode("ascii"),
        }
        self._write_atomically(json.dumps(doc, indent=1).encode())

    def _write_atomically(self, data: bytes) -> None:
        write_atomically(self.path, data, mode=PRIVATE_MODE)

    def quarantine(self) -> Path | None:
        """Move an unusable file aside (kept for inspection) so the next good view can be written."""
        target = self.path.with_suffix(".corrupt")
        try:
            os.replace(self.path, target)
        except FileNotFoundError:
            return None
        return target
