"""ECDSA signature checks of event batches on the machine's other cores.

Measured on the 2-core bench machine: ``cryptography``'s ECDSA ``verify`` does not scale across threads (two
threads verify no faster than one: the call holds the GIL for most of its work), and at ~80–130 µs per P-256
verification it is the largest cost of ingest. So large batches are verified in worker processes: the batch is
cut into one chunk per worker, each chunk carries the DER public keys it needs, and a worker answers one byte per
event (1 = the signature verifies). Everything else (decoding, shape checks, attribution) stays in the CP process,
so the rules live in one place (``verifier.check_batch``).

Small batches (a node's live outbox usually sends a few events) are verified inline: a process hop costs more
than it saves, and the reaction-time path stays free of IPC. The pool starts in the background on the first large
batch (a CP that never sees one — most test servers — never spawns a process); until it is up, and if it ever
breaks, verification runs inline (in a thread), so correctness never depends on it. Workers are started with
``spawn``: like any ``multiprocessing`` program, a script that embeds the CP must guard its entry point with
``if __name__ == "__main__":`` (the ``xcwl`` console script does).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger(__name__)

_ALGORITHM = ec.ECDSA(hashes.SHA256())

# One check: (DER SubjectPublicKeyInfo of the signer, payload, DER signature).
Check = tuple[bytes, bytes, bytes]


@lru_cache(maxsize=4096)
def _public_key(der: bytes) -> ec.EllipticCurvePublicKey:
    # Per process (worker or CP): a DER key names one immutable key, so the cache never goes stale.
    key = serialization.load_der_public_key(der)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("signer key is not ECDSA")
    return key


def verify_chunk(checks: Sequence[Check]) -> bytes:
    """One byte per check: 1 if the signature verifies over the payload with the key, else 0 (pure CPU)."""
    out = bytearray(len(checks))
    for i, (der, payload, signature) in enumerate(checks):
        try:
            _public_key(der).verify(signature, payload, _ALGORITHM)
        except (InvalidSignature, ValueError):
            continue
        out[i] = 1
    return bytes(out)


def _ready() -> bool:
    return True


class SignatureVerifier:
    """Verifies batches of signatures: inline for small batches, across worker processes for large ones."""

    def __init__(self, workers: int, min_parallel: int = 64) -> None:
        self._workers = workers
        self._min_parallel = min_parallel
        self._pool: ProcessPoolExecutor | None = None
        self._ready = False
        self._starting: asyncio.Task[None] | None = None

    @property
    def parallel(self) -> bool:
        """Whether the worker processes are up (large batches go to them)."""
        return self._ready and self._pool is not None

    async def start(self) -> None:
        """Start the worker processes and wait until each answers (no-op with 0 workers)."""
        if self._workers <= 0 or self._pool is not None:
            return
        # spawn, not fork: the CP process runs gRPC and database threads that a fork must not copy.
        pool = ProcessPoolExecutor(max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"))
        self._pool = pool
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(self._workers)))
        except (BrokenProcessPool, OSError) as err:
            log.warning("signature worker pool unavailable; verifying inline", extra={"fields": {"error": str(err)}})
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return
        self._ready = True

    async def close(self) -> None:
        """Stop the worker processes."""
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
            self._starting = None
        pool, self._pool, self._ready = self._pool, None, False
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)

    async def verify(self, checks: Sequence[Check]) -> bytes:
        """One byte per check (1 = valid), computed off the event loop."""
        if not checks:
            return b""
        pool = self._pool
        if len(checks) >= self._min_parallel and self._workers > 0 and self._starting is None:
            self._starting = asyncio.create_task(self.start())  # this batch goes inline; later ones to the pool
        if pool is None or not self._ready or len(checks) < self._min_parallel:
            if len(checks) < 8:
                return verify_chunk(checks)
            return await asyncio.to_thread(verify_chunk, checks)
        size = -(-len(checks) // self._workers)
        loop = asyncio.get_running_loop()
        try:
            parts = await asyncio.gather(*(loop.run_in_executor(pool, verify_chunk, checks[i:i + size])
                                           for i in range(0, len(checks), size)))
        except BrokenProcessPool:
            log.warning("signature worker pool broke; verifying inline")
            self._ready = False
            return await asyncio.to_thread(verify_chunk, checks)
        return b"".join(parts)
