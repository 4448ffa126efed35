"""Retry rules of the SDK against a real in-process server with the production pipeline, failing on purpose.

The servicer fails the first calls with a chosen domain error (translated by the pipeline into a status with its
ErrorInfo) and records what each attempt sent: the idempotency key and the deadline.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest

from tests.support.pki import PkiFixture
from wl_node.authz import TABLE as NODE_AUTHZ
from xcwl_sdk import (
    ClientConfig,
    FailedPreconditionError,
    ResourceExhaustedError,
    RetryConfig,
    StorefrontClient,
    UnavailableError,
)
from xporty.node.v1 import storefront_pb2
from xporty.node.v1 import storefront_service_pb2 as sf_pb
from xporty.node.v1 import storefront_service_pb2_grpc as sf_grpc
from xporty.trader.v1 import offer_pb2
from xwl_runtime.errors import FailedPrecondition, Unavailable, XcwlError
from xwl_runtime.identity import Identity
from xwl_runtime.ratelimit import RATE_LIMITED, RateLimited
from xwl_runtime.server import Listener, RunningServer, start_server
from xwl_runtime.tls import ReloadableServerCredentials

SERVICE = "xporty.node.v1.StorefrontService"


@dataclass
class FlakyStorefront(sf_grpc.StorefrontServiceServicer):
    """Raises ``failures`` in order, then succeeds; records (key, remaining deadline) per Checkout attempt."""

    failures: list[XcwlError] = field(default_factory=list)
    attempts: list[tuple[str, float | None]] = field(default_factory=list)
    publishes: int = 0

    async def Checkout(self, request, context):  # noqa: N802
        self.attempts.append((request.idempotency_key, context.time_remaining()))
        if self.failures:
            raise self.failures.pop(0)
        return sf_pb.CheckoutResponse(checkout=storefront_pb2.Checkout(
            checkout_id="c-1", status=storefront_pb2.CHECKOUT_STATUS_COMPLETED))

    async def PublishOffer(self, request, context):  # noqa: N802
        self.publishes += 1
        if self.failures:
            raise self.failures.pop(0)
        return sf_pb.PublishOfferResponse(offer=request.offer)


@pytest.fixture
async def flaky(pki: PkiFixture) -> AsyncIterator[tuple[FlakyStorefront, RunningServer]]:
    servicer = FlakyStorefront()
    server = await start_server(
        registrations=[lambda s: sf_grpc.add_StorefrontServiceServicer_to_server(servicer, s)],
        service_names=[SERVICE],
        listeners=[Listener("127.0.0.1:0", ReloadableServerCredentials(pki.material(Identity.wl("wl-a"))).credentials)],
        authz_table=NODE_AUTHZ, local_wl="wl-a",
    )
    try:
        yield servicer, server
    finally:
        await server.stop(0)


def _connect(pki: PkiFixture, server: RunningServer, config: ClientConfig):  # noqa: ANN202
    return StorefrontClient.connect(f"127.0.0.1:{server.port}", pki.material(Identity.app("wl-a", "shop")),
                                    config=config)


async def test_checkout_retries_transient_codes_with_the_same_key_and_sends_a_deadline(
    pki: PkiFixture, flaky: tuple[FlakyStorefront, RunningServer]
) -> None:
    servicer, server = flaky
    servicer.failures = [Unavailable("exporter unreachable"), Unavailable("exporter unreachable")]
    config = ClientConfig(checkout_timeout_s=5.0, retry=RetryConfig(initial_backoff_s=0.01, max_backoff_s=0.02))
    async with _connect(pki, server, config) as client:
        done = await client.checkout("wl-b:o-1", 1, buyer_reference="m-1")
    assert done.checkout_id == "c-1"
    keys = [key for key, _ in servicer.attempts]
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0]  # one generated key, reused by every retry
    for _, remaining in servicer.attempts:
        assert remaining is not None and 0 < remaining <= 5.0


async def test_checkout_does_not_retry_a_refusal_and_keeps_reason(
    pki: PkiFixture, flaky: tuple[FlakyStorefront, RunningServer]
) -> None:
    servicer, server = flaky
    servicer.failures = [FailedPrecondition("pair paused", reason="PAIR_PAUSED", metadata={"exporter_wl": "wl-b"})]
    async with _connect(pki, server, ClientConfig()) as client:
        with pytest.raises(FailedPreconditionError) as err:
            await client.checkout("wl-b:o-1", 1, buyer_reference="m-1", idempotency_key="k-7")
    assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.reason == "PAIR_PAUSED" and err.value.metadata == {"exporter_wl": "wl-b"}
    assert servicer.attempts == [("k-7", servicer.attempts[0][1])]


async def test_retry_info_delay_is_honoured_and_attempts_are_bounded(
    pki: PkiFixture, flaky: tuple[FlakyStorefront, RunningServer]
) -> None:
    servicer, server = flaky
    servicer.failures = [RateLimited("slow down", reason=RATE_LIMITED, retry_after_s=0.2) for _ in range(3)]
    config = ClientConfig(retry=RetryConfig(max_attempts=2, initial_backoff_s=0.0, max_backoff_s=0.0))
    async with _connect(pki, server, config) as client:
        start = time.monotonic()
        with pytest.raises(ResourceExhaustedError) as err:
            await client.checkout("wl-b:o-1", 1, buyer_reference="m-1")
        elapsed = time.monotonic() - start
    assert err.value.reason == RATE_LIMITED
    assert err.value.retry_delay is not None and err.value.retry_delay.total_seconds() == pytest.approx(0.2)
    assert len(servicer.attempts) == 2 and elapsed >= 0.2


async def test_offer_writes_are_not_retried(pki: PkiFixture, flaky: tuple[FlakyStorefront, RunningServer]) -> None:
    servicer, server = flaky
    servicer.failures = [Unavailable("store busy")]
    async with _connect(pki, server, ClientConfig()) as client:
        with pytest.raises(UnavailableError) as err:
            await client.publish_offer(offer_pb2.Offer(offer_id="o-1"))
    assert err.value.reason == "UNAVAILABLE"
    assert servicer.publishes == 1


