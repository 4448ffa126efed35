"""``xcwl checkout buy|get``: a WL app buys an imported offer through its node's local API.

``buy`` is idempotent on ``--key`` (default: a fresh random key); the node answers with the checkout's state
(COMPLETED, FAILED with a reason, or PENDING while the exporter's answer is in doubt). A refusal before anything
is stored (policy, enforcer, circuit open) is an error line and exit 2.
"""

from __future__ import annotations

import argparse
import uuid

from xporty.node.v1 import storefront_pb2, storefront_service_pb2

from .node_client import NodeClient, add_node_flags, node_command
from .output import emit, to_dict
from .render_trade import checkout_text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    checkout = sub.add_parser("checkout", help="buy an imported offer (the node's local API, as a WL app)")
    c_sub = checkout.add_subparsers(dest="checkout_cmd", required=True)

    buy = c_sub.add_parser("buy", help="Checkout: buy units of an imported offer")
    add_node_flags(buy)
    buy.add_argument("--offer", required=True, metavar="SOURCE_WL:OFFER_ID", help="imported offer id")
    buy.add_argument("--quantity", type=int, default=1, help="units (>= 1)")
    buy.add_argument("--buyer", required=True, help="opaque buyer reference in this WL (never PII)")
    buy.add_argument("--idempotency-key", dest="idem_key", default="", help="default: a new random key")
    buy.set_defaults(func=node_command(_buy))

    get = c_sub.add_parser("get", help="GetCheckout")
    add_node_flags(get)
    get.add_argument("--id", dest="checkout_id", required=True, help="checkout id")
    get.set_defaults(func=node_command(_get))


def checkout_request(args: argparse.Namespace) -> storefront_service_pb2.CheckoutRequest:
    return storefront_service_pb2.CheckoutRequest(
        idempotency_key=args.idem_key or f"xcwl-{uuid.uuid4().hex}", imported_offer_id=args.offer,
        quantity=args.quantity, buyer_reference=args.buyer,
    )


def _show(args: argparse.Namespace, checkout: storefront_pb2.Checkout) -> int:
    emit(args.json, {"checkout": to_dict(checkout)}, checkout_text(checkout))
    # A decided failure is a check that ran and failed (exit 1), distinct from a refused RPC (exit 2).
    return 1 if checkout.status in (storefront_pb2.CHECKOUT_STATUS_FAILED,
                                    storefront_pb2.CHECKOUT_STATUS_CANCELLED) else 0


async def _buy(args: argparse.Namespace, client: NodeClient) -> int:
    return _show(args, await client.checkout(checkout_request(args)))


async def _get(args: argparse.Namespace, client: NodeClient) -> int:
    return _show(args, await client.get_checkout(args.checkout_id))
