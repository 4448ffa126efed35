"""Certificate renewal: a background loop that replaces the node's certificate at about half its lifetime.

The renewal time is ``not_before + lifetime × (0.5 ± 0.1)``, the jitter drawn once per certificate so that
nodes enrolled together do not all renew together. Renewal sends a CSR for a fresh key over mTLS with the
current certificate (the CP certifies the caller's own identity only), checks the answer, writes the pair
atomically, and then calls every ``on_rotate`` callback: the node's server swaps its credentials for new
handshakes, its CP client builds a new channel and drains the old one (grpcio clients cannot reload certificates).

Time comes from an injected clock; since the clock has no sleep, the loop waits in real time for at most
``poll_interval`` before looking at the clock again, which also lets tests move a ``ManualClock`` forward.
Failures are retried with jittered exponential backoff until the certificate expires; after that only a new
enrollment helps, and the loop keeps logging that.

Two refusals are final, and retrying would change nothing: the identity reached the CP's maximum age
(FAILED_PRECONDITION ``IDENTITY_MAX_AGE``), or the certificate was already renewed by someone else holding this
key (PERMISSION_DENIED ``CERTIFICATE_SUPERSEDED``). The loop logs an error saying what to do (start the node
with a new bootstrap token once the certificate expires, or before by removing ``wl-<id>.crt``), keeps serving
with the current certificate, and tries again only at its expiry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import random
from collections.abc import Awaitable, Callable

import grpc
from cryptography import x509

from xporty.cp.v1 import identity_service_pb2, identity_service_pb2_grpc
from xwl_runtime.backoff import Backoff
from xwl_runtime.clock import Clock
from xwl_runtime.component import Component
from xwl_runtime.errors import decode_rpc_error
from xwl_runtime.identity import Identity
from xwl_runtime.pki import PkiDir, key_to_pem, make_csr, new_private_key
from xwl_runtime.tls import KeyPair, TlsMaterial, secure_channel

from .enrollment import EnrollmentError, carries_pinned_name, check_issued
from .files import write_pair

log = logging.getLogger(__name__)

RotateCallback = Callable[[TlsMaterial], Awaitable[None] | None]

RENEW_AT_FRACTION = 0.5
JITTER_FRACTION = 0.1
DEFAULT_POLL_INTERVAL_S = 5.0
RENEW_TIMEOUT_S = 10.0
FINAL_REASONS = frozenset({"IDENTITY_MAX_AGE", "CERTIFICATE_SUPERSEDED"})
"""Refusals that no retry can change: only a new enrollment helps."""


class CertificateRenewer:
    """Keeps the node's certificate fresh and tells the rest of the node when it changed."""

    def __init__(
        self,
        *,
        pki: PkiDir,
        wl_id: str,
        cp_target: str,
        material: TlsMaterial,
        clock: Clock,
        rng: random.Random | None = None,
        backoff: Backoff | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        rpc_timeout: float = RENEW_TIMEOUT_S,
    ) -> None:
        self._pki = pki
        self._identity = Identity.wl(wl_id)
        self._cp_target = cp_target
        self._clock = clock
        self._rng = rng or random.Random()
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=60.0, rng=self._rng)
        self._poll_interval = poll_interval
        self._rpc_timeout = rpc_timeout
        self._callbacks: list[RotateCallback] = []
        self._material = material
        self._due = self._renewal_time(material)
        self.renewals = 0
        self.final_refusal = ""
        """Set when the CP refused renewal for good (max age reached, certificate superseded)."""

    @property
    def material(self) -> TlsMaterial:
        """The current key pair and CA bundle."""
        return self._material

    @property
    def due(self) -> dt.datetime:
        """When the current certificate will be renewed."""
        return self._due

    def on_rotate(self, callback: RotateCallback) -> None:
        """Call ``callback(material)`` (sync or async) after every successful renewal."""
        self._callbacks.append(callback)

    def _renewal_time(self, material: TlsMaterial) -> dt.datetime:
        cert = x509.load_pem_x509_certificate(material.pair.cert_pem)
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if not carries_pinned_name(cert, self._identity):
            # Issued before clients pinned identities: peers refuse it, so replace it at once.
            return start
        fraction = RENEW_AT_FRACTION + self._rng.uniform(-JITTER_FRACTION, JITTER_FRACTION)
        return start + (end - start) * fraction

    async def renew_once(self) -> TlsMaterial:
        """Renew now: new key, RenewCertificate over mTLS, atomic write, callbacks. Returns the new material."""
        key = new_private_key()
        request = identity_service_pb2.RenewCertificateRequest(csr_pem=make_csr(key).decode())
        async with secure_channel(self._cp_target, self._material, expected=Identity.cp()) as channel:
            stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
            response = await stub.RenewCertificate(request, timeout=self._rpc_timeout)
        cert_pem = response.certificate_pem.encode()
        check_issued(cert_pem, self._material.ca_pem, self._identity, key)
        material = TlsMaterial(self._material.ca_pem, KeyPair(cert_pem, key_to_pem(key)))
        await asyncio.to_thread(write_pair, self._pki, self._identity, material.pair)
        self._material = material
        self._due = self._renewal_time(material)
        self.renewals += 1
        log.info(
            "certificate renewed",
            extra={"fields": {"wl_id": self._identity.wl_id, "expire_time": response.expire_time.ToJsonString(),
                              "next_renewal": self._due.isoformat()}},
        )
        await self._notify(material)
        return material

    async def _notify(self, material: TlsMaterial) -> None:
        for callback in self._callbacks:
            try:
                result = callback(material)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - one failing listener must not keep the others on the old pair
                log.exception("certificate rotation callback failed")

    async def _wait(self, stop: asyncio.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` of the clock's time; True if ``stop`` was set."""
        await self._clock.wait_any(stop, timeout=max(seconds, 0.0))
        return stop.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        """Renew whenever due until ``stop`` is set."""
        while not stop.is_set():
            remaining = (self._due - self._clock.now()).total_seconds()
            if remaining > 0:
                if await self._wait(stop, min(remaining, self._poll_interval)):
                    return
                continue
            try:
                await self.renew_once()
                self._backoff.reset()
            except grpc.aio.AioRpcError as err:
                remote = decode_rpc_error(err)
                if remote.reason in FINAL_REASONS:
                    self._final_refusal(str(remote))
                    continue
                self._log_failure(str(remote))
                if await self._wait(stop, self._backoff.next_delay()):
                    return
            except (EnrollmentError, OSError) as err:
                self._log_failure(str(err))
                if await self._wait(stop, self._backoff.next_delay()):
                    return

    def _not_after(self) -> dt.datetime:
        return x509.load_pem_x509_certificate(self._material.pair.cert_pem).not_valid_after_utc

    def _final_refusal(self, detail: str) -> None:
        """No renewal is possible any more: say what to do, keep serving, look again only at expiry."""
        expiry = self._not_after()
        self._due = max(expiry, self._clock.now() + dt.timedelta(seconds=self._poll_interval))
        self.final_refusal = detail
        log.error(
            "certificate renewal refused for good: the node keeps serving until its certificate expires, then "
            "needs a new enrollment: ask an operator for a bootstrap token ('xcwl token create --wl WL') and "
            "restart the node with --bootstrap-token and --cp-enroll (after removing wl-<id>.crt/.key to switch "
            "before expiry)",
            extra={"fields": {"wl_id": self._identity.wl_id, "error": detail, "expire_time": expiry.isoformat()}},
        )

    def _log_failure(self, detail: str) -> None:
        expired = self._clock.now() >= self._not_after()
        log.warning(
            "certificate renewal failed" + ("; certificate expired, enroll again" if expired else ""),
            extra={"fields": {"wl_id": self._identity.wl_id, "error": detail}},
        )



def renewal_component(renewer: CertificateRenewer) -> Component:
    """The renewal loop as a node component (no RPCs of its own)."""
    return Component(name="certificate-renewal", loops=[renewer.run])
