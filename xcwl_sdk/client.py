"""``StorefrontClient``: a WL service's typed, async client of its own node's local API (StorefrontService).

One client holds one mTLS channel. The node must prove the WL the caller expects (its CA-assigned name is pinned),
so a client never talks to another WL's node by mistake. Every call carries an explicit deadline; reads and
checkouts are retried on transient codes with jittered backoff inside that deadline (a checkout always with the
same idempotency key, so a retry never buys twice); offer writes are not retried (their outcome is read back).
Failures surface as the typed exceptions of ``xcwl_sdk.errors``.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc

from xporty.node.v1 import storefront_pb2, storefront_service_pb2, storefront_service_pb2_grpc
from xporty.trader.v1 import offer_pb2
from xwl_runtime.identity import Identity, Kind
from xwl_runtime.pki import PkiDir, certificate_identity
from xwl_runtime.tls import KeyPair, TlsMaterial, secure_channel

from .config import ClientConfig
from .errors import ApiError, from_rpc_error

T = TypeVar("T")

MAX_PAGES = 10_000
"""Safety stop when following page tokens."""
def new_idempotency_key() -> str:
    """A fresh idempotency key (random UUID): one per purchase, reused for every retry of that purchase."""
    return str(uuid.uuid4())


def app_credentials(pki_dir: Path, wl_id: str, app: str) -> TlsMaterial:
    """The CA certificate and the app certificate ``app-<wl>-<app>.crt/.key`` from a PKI directory."""
    return TlsMaterial.from_pki(PkiDir(pki_dir), Identity.app(wl_id, app))


def credentials_from_files(ca: Path, cert: Path, key: Path) -> TlsMaterial:
    """The CA certificate and an app's certificate and key from three PEM files."""
    return TlsMaterial(ca.read_bytes(), KeyPair(cert.read_bytes(), key.read_bytes()))


def _node_of(credentials: TlsMaterial, node_wl: str | None) -> Identity:
    if node_wl:
        return Identity.wl(node_wl)
    caller = certificate_identity(credentials.pair.cert_pem)
    if caller is None or caller.kind is not Kind.APP:
        raise ValueError("node_wl is required unless the certificate is an app certificate (it names its WL)")
    return Identity.wl(caller.wl_id)


class StorefrontClient:
    """Typed StorefrontService calls; open one with ``StorefrontClient.connect`` (or wrap a ready channel)."""

    def __init__(self, channel: grpc.aio.Channel, *, config: ClientConfig | None = None,
                 rng: random.Random | None = None) -> None:
        self.config = config or ClientConfig()
        self._stub = storefront_service_pb2_grpc.StorefrontServiceStub(channel)
        self._rng = rng or random.Random()

    @classmethod
    @asynccontextmanager
    async def connect(cls, target: str, credentials: TlsMaterial, *, node_wl: str | None = None,
                      config: ClientConfig | None = None) -> AsyncIterator[StorefrontClient]:
        """A client over mTLS to the node of ``node_wl`` (default: the WL of the app certificate) at ``target``.

        The channel closes when the block exits. A server that cannot prove that WL fails every call with
        ``UnavailableError`` before any request reaches it.
        """
        async with secure_channel(target, credentials, expected=_node_of(credentials, node_wl)) as channel:
            yield cls(channel, config=config)

    # --- call discipline ----------------------------------------------------------------------------------------
    async def _retrying(self, attempt: Callable[[float], Awaitable[T]], *, deadline: float,
                        codes: Iterable[grpc.StatusCode]) -> T:
        """``attempt(timeout)`` until it succeeds, fails with a code outside ``codes``, or attempts/time run out."""
        retry = self.config.retry
        retryable = frozenset(codes)
        tries = 0
        while True:
            tries += 1
            remaining = deadline - time.monotonic()
            try:
                return await attempt(max(remaining, 0.001))
            except grpc.RpcError as err:
                error = from_rpc_error(err)
            if error.code not in retryable or tries >= retry.max_attempts:
                raise error
            pause = self._rng.uniform(0, min(retry.max_backoff_s, retry.initial_backoff_s * 2 ** (tries - 1)))
            if error.retry_delay is not None:
                pause = max(pause, error.retry_delay.total_seconds())
            if time.monotonic() + pause >= deadline:
                raise error
            await asyncio.sleep(pause)

    async def _read(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        deadline = time.monotonic() + self.config.timeout_s
        return await self._retrying(lambda timeout: method(request, timeout=timeout), deadline=deadline,
                                    codes=self.config.retry.read_codes)

    async def _write(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        try:
            return await method(request, timeout=self.config.timeout_s)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    # --- this WL's exportable offers ----------------------------------------------------------------------------
    async def publish_offer(self, offer: offer_pb2.Offer) -> offer_pb2.Offer:
        """Create an exportable offer; ``AlreadyExistsError`` when its id is taken. Returns the stored offer."""
        resp: storefront_service_pb2.PublishOfferResponse = await self._write(
            self._stub.PublishOffer, storefront_service_pb2.PublishOfferRequest(offer=offer))
        return resp.offer

    async def update_offer(self, offer: offer_pb2.Offer) -> offer_pb2.Offer:
        """Replace the fields of the offer ``offer.offer_id``. Returns the stored offer (its new revision)."""
        resp: storefront_service_pb2.UpdateOfferResponse = await self._write(
            self._stub.UpdateOffer, storefront_service_pb2.UpdateOfferRequest(offer=offer))
        return resp.offer

    async def withdraw_offer(self, offer_id: str) -> None:
        """Withdraw an offer from every importer."""
        await self._write(self._stub.WithdrawOffer, storefront_service_pb2.WithdrawOfferRequest(offer_id=offer_id))

    # --- the imported catalog -----------------------------------------------------------------------------------
    async def iter_imported_offers(self, *, source_wl: str = "", category: str = "",
                                   text: str = "") -> AsyncIterator[storefront_pb2.ImportedOffer]:
        """Every imported offer matching the filters, page by page in a stable order (by imported offer id)."""
        token = ""
        for _ in range(MAX_PAGES):
            request = storefront_service_pb2.ListImportedOffersRequest(
                source_wl=source_wl, category=category, text=text, page_size=self.config.page_size,
                page_token=token)
            resp: storefront_service_pb2.ListImportedOffersResponse = await self._read(
                self._stub.ListImportedOffers, request)
            for offer in resp.offers:
                yield offer
            token = resp.next_page_token
            if not token:
                return

    async def list_imported_offers(self, *, source_wl: str = "", category: str = "",
                                   text: str = "") -> list[storefront_pb2.ImportedOffer]:
        """Every imported offer matching the filters, as one list."""
        return [o async for o in self.iter_imported_offers(source_wl=source_wl, category=category, text=text)]

    async def get_imported_offer(self, imported_offer_id: str) -> storefront_pb2.ImportedOffer:
        """One imported offer by its id ``<source_wl>:<source_offer_id>``."""
        resp: storefront_service_pb2.GetImportedOfferResponse = await self._read(
            self._stub.GetImportedOffer,
            storefront_service_pb2.GetImportedOfferRequest(imported_offer_id=imported_offer_id))
        return resp.offer

    # --- checkout -----------------------------------------------------------------------------------------------
    async def checkout(self, imported_offer_id: str, quantity: int = 1, *, buyer_reference: str,
                       idempotency_key: str | None = None, wait: bool = True) -> storefront_pb2.Checkout:
        """Buy ``quantity`` units of an imported offer; returns the checkout.

        ``idempotency_key`` identifies the purchase (a fresh one when None; pass your own to retry a purchase
        across process restarts). Transient failures are retried with the SAME key within
        ``config.checkout_timeout_s``. With ``wait`` the request is re-sent (same key: a replay, never a second
        order) while the checkout is PENDING, until it is COMPLETED, FAILED or CANCELLED or the deadline passes
        (then the PENDING checkout is returned). ``buyer_reference`` is an opaque member reference, never PII.
        """
        key = idempotency_key or new_idempotency_key()
        request = storefront_service_pb2.CheckoutRequest(
            idempotency_key=key, imported_offer_id=imported_offer_id, quantity=quantity,
            buyer_reference=buyer_reference)
        deadline = time.monotonic() + self.config.checkout_timeout_s

        async def once(timeout: float) -> storefront_service_pb2.CheckoutResponse:
            resp: storefront_service_pb2.CheckoutResponse = await self._stub.Checkout(request, timeout=timeout)
            return resp

        while True:
            resp = await self._retrying(once, deadline=deadline, codes=self.config.retry.checkout_codes)
            checkout = resp.checkout
            pending = checkout.status == storefront_pb2.CHECKOUT_STATUS_PENDING
            if not (wait and pending) or time.monotonic() + self.config.pending_poll_s >= deadline:
                return checkout
            await asyncio.sleep(self.config.pending_poll_s)

    async def get_checkout(self, checkout_id: str) -> storefront_pb2.Checkout:
        """A checkout by its id."""
        resp: storefront_service_pb2.GetCheckoutResponse = await self._read(
            self._stub.GetCheckout, storefront_service_pb2.GetCheckoutRequest(checkout_id=checkout_id))
        return resp.checkout

    # --- node state, policies and alerts ------------------------------------------------------------------------
    async def node_state(self) -> storefront_service_pb2.GetNodeStateResponse:
        """The node's policy state (applied version, confirmation time, stream, staleness) and audit checkpoint."""
        resp: storefront_service_pb2.GetNodeStateResponse = await self._read(
            self._stub.GetNodeState, storefront_service_pb2.GetNodeStateRequest())
        return resp

    async def watch_node_state(self, *, interval_s: float = 1.0) -> AsyncIterator[storefront_pb2.NodeState]:
        """The node's policy state now and after every change (policy version, stream, staleness), polled.

        Transient failures are retried; the iterator ends only when the caller stops iterating or on an error
        that is not transient (raised).
        """
        last: tuple[int, bool, bool] | None = None
        while True:
            state = (await self.node_state()).state
            current = (state.policy_version, state.stream_connected, state.stale)
            if current != last:
                last = current
                yield state
            await asyncio.sleep(interval_s)

    def watch_pair_alerts(self) -> AsyncIterator[storefront_service_pb2.WatchPairAlertsResponse]:
        """The imbalance alerts of this WL's pairs from the local API (``StorefrontService.WatchPairAlerts``): every
        open alert on connect, then each raise and clear. Failures come as typed errors (``from_rpc_error``)."""
        return self._stream(self._stub.WatchPairAlerts, storefront_service_pb2.WatchPairAlertsRequest())

    async def _stream(self, method: Callable[..., Any], request: Any) -> AsyncIterator[Any]:
        try:
            async for item in method(request):
                yield item
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None


__all__ = ["ApiError", "StorefrontClient", "app_credentials", "credentials_from_files", "new_idempotency_key"]
