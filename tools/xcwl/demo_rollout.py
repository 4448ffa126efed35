"""The demo's rollout step: wl-a → wl-b goes pilot → expansion → general (``docs/rollout.md``).

The pilot admits one named member with a maximum order of 40 and a daily cap of 31 XPY-A (two orders of the
15.50 desk lamp): a member outside the cohort is refused, the pilot member buys twice and the third order is
refused at the daily cap with the headroom; then the operator promotes to expansion (every buyer by share) and to
general, and the outsider buys.
"""

from __future__ import annotations

from xcwl_sdk import ApiError
from xporty.cp.v1 import rollout_pb2, rollout_service_pb2
from xporty.node.v1 import storefront_pb2

from .demo_trade import OFFERS
from .demo_world import Demo
from .errors import CliError
from .rollout_cmd import describe

LAMP = next(o for o in OFFERS if o.offer_id == "a-2")
PILOT_MEMBER = "pilot-1"


async def _refused(demo: Demo, key: str, buyer: str, expected: str) -> None:
    async with demo.app("wl-b") as app:
        try:
            await app.checkout(LAMP.imported_id, 1, buyer_reference=buyer, idempotency_key=key)
        except ApiError as err:
            if err.reason != expected:
                raise CliError(f"expected {expected}, got {err}") from None
            details = ", ".join(f"{k} {v}" for k, v in sorted(err.metadata.items())
                                if k in ("stage", "cap", "limit", "used", "headroom"))
            demo.out(f"  wl-b {buyer}: refused {err.reason} ({details})")
            return
    raise CliError(f"checkout {key} was not refused ({expected} expected)")


async def _bought(demo: Demo, key: str, buyer: str) -> None:
    async with demo.app("wl-b") as app:
        checkout = await app.checkout(LAMP.imported_id, 1, buyer_reference=buyer, idempotency_key=key)
    if checkout.status != storefront_pb2.CHECKOUT_STATUS_COMPLETED:
        raise CliError(f"checkout {key}: {storefront_pb2.CheckoutStatus.Name(checkout.status)} {checkout.reason}")
    demo.out(f"  wl-b {buyer}: bought 1 x {LAMP.offer_id} ({checkout.total.amount} {checkout.total.currency})")


async def rollout_scenario(demo: Demo) -> None:
    async with demo.client() as client:
        configured = await client.call(client.rollout.ConfigureRollout, rollout_service_pb2.ConfigureRolloutRequest(
            exporter_wl="wl-a", importer_wl="wl-b", stage=rollout_pb2.ROLLOUT_STAGE_PILOT,
            pilot=rollout_service_pb2.RolloutLimitsInput(cohort_buyer_references=[PILOT_MEMBER],
                                                         max_order_value="40", daily_value_cap="31"),
            expansion=rollout_service_pb2.RolloutLimitsInput(cohort_basis_points=10_000, daily_value_cap="1000"),
            step_back_on_breach=True, reason="demo: pilot"))
    demo.out(f"configured: {describe(configured.rollout)} (policy version {configured.version})")
    await demo.wait_applied(configured.version)
    await _refused(demo, "rollout-outsider", "outsider-9", "ROLLOUT_NOT_IN_COHORT")
    for i in range(2):
        await _bought(demo, f"rollout-pilot-{i}", PILOT_MEMBER)
    await _refused(demo, "rollout-pilot-2", PILOT_MEMBER, "ROLLOUT_DAILY_CAP")
    async with demo.client() as client:
        for reason in ("demo: pilot healthy", "demo: expansion healthy"):
            promoted = await client.call(client.rollout.PromoteRollout, rollout_service_pb2.PromoteRolloutRequest(
                exporter_wl="wl-a", importer_wl="wl-b", reason=reason))
            demo.out(f"promoted: {describe(promoted.rollout)} (policy version {promoted.version})")
    await demo.wait_applied(promoted.version)
    await _bought(demo, "rollout-outsider-general", "outsider-9")
