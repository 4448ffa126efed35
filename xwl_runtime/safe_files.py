"""Writing files that hold secrets or state atomically, with the mode they must have from the first byte.

A temporary file with a fixed name is a trap: ``O_CREAT | O_TRUNC`` on a stale ``key.tmp`` left 0644 (by a crash,
an operator, or another user on the host) keeps that mode, and the secret lands world-readable before the rename.
Here every write gets a fresh, unpredictable temporary name in the target's directory, created with ``O_EXCL``
(never an existing file, never through a symlink) and the final mode, fsynced, renamed over the target, and the
directory fsynced so the rename survives a crash. Stale temporaries of earlier crashes are left alone: they are
never reused, and their names (``.<target>.<random>.tmp``) say what they were.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE_MODE = 0o600
"""Keys, tokens, databases and node state: the owner only."""
PUBLIC_MODE = 0o644
"""Certificates."""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, mode: int = PRIVATE_MODE) -> None:
    """Replace ``path`` with ``data``; the file has ``mode`` (umask aside, and never wider) at every instant."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        try:
            os.fchmod(fd, mode)  # O_CREAT's mode is narrowed by the umask; a public file must still be readable
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(directory)


def restrict_to_owner(path: Path) -> None:
    """Set ``path`` to 0600 if it exists (files created by a library that does not take a mode)."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, PRIVATE_MODE)
