"""``xcwl offer publish|update|withdraw``: a WL app manages its exportable offers through its node's local API.

The caller must be an app of the node's WL (``--as-app WL/NAME``); the node validates every field and answers
INVALID_ARGUMENT naming the field, storing nothing.
"""

from __future__ import annotations

import argparse

from xporty.common.v1 import money_pb2
from xporty.trader.v1 import offer_pb2

from .node_client import NodeClient, add_node_flags, node_command
from .output import emit, to_dict
from .render_trade import offer_text


def _offer_flags(parser: argparse.ArgumentParser) -> None:
    add_node_flags(parser)
    parser.add_argument("--id", dest="offer_id", required=True, help="offer id (unique in this WL)")
    parser.add_argument("--title", required=True, help="title")
    parser.add_argument("--description", default="", help="description")
    parser.add_argument("--category", default="general", help="category")
    parser.add_argument("--price", required=True, help="unit price, a decimal in the WL's currency (e.g. 12.50)")
    parser.add_argument("--currency", required=True, help="the WL's currency code (e.g. XPY-A)")
    parser.add_argument("--stock", type=int, required=True, help="units in stock")
    parser.add_argument("--image", action="append", default=[], help="image URL (repeatable)")
    parser.add_argument("--manager-name", required=True, help="trader manager's name (PII, masked to importers)")
    parser.add_argument("--manager-email", required=True, help="trader manager's e-mail (PII)")
    parser.add_argument("--manager-phone", required=True, help="trader manager's phone (PII)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    offer = sub.add_parser("offer", help="this WL's exportable offers (the node's local API, as a WL app)")
    o_sub = offer.add_subparsers(dest="offer_cmd", required=True)

    publish = o_sub.add_parser("publish", help="publish a new offer (PublishOffer)")
    _offer_flags(publish)
    publish.set_defaults(func=node_command(_publish))

    update = o_sub.add_parser("update", help="replace an offer's fields (UpdateOffer)")
    _offer_flags(update)
    update.set_defaults(func=node_command(_update))

    withdraw = o_sub.add_parser("withdraw", help="withdraw an offer from every importer (WithdrawOffer)")
    add_node_flags(withdraw)
    withdraw.add_argument("--id", dest="offer_id", required=True, help="offer id")
    withdraw.set_defaults(func=node_command(_withdraw))


def offer_from_args(args: argparse.Namespace) -> offer_pb2.Offer:
    """The Offer message the flags describe (the node fills exporter, times and revision)."""
    return offer_pb2.Offer(
        offer_id=args.offer_id, title=args.title, description=args.description, category=args.category,
        unit_price=money_pb2.Money(currency=args.currency, amount=args.price), stock=args.stock,
        image_urls=list(args.image),
        manager=offer_pb2.TraderContact(name=args.manager_name, email=args.manager_email, phone=args.manager_phone),
    )


async def _publish(args: argparse.Namespace, client: NodeClient) -> int:
    stored = await client.publish(offer_from_args(args))
    emit(args.json, {"offer": to_dict(stored)}, f"published {offer_text(stored)}")
    return 0


async def _update(args: argparse.Namespace, client: NodeClient) -> int:
    stored = await client.update(offer_from_args(args))
    emit(args.json, {"offer": to_dict(stored)}, f"updated {offer_text(stored)}")
    return 0


async def _withdraw(args: argparse.Namespace, client: NodeClient) -> int:
    await client.withdraw(args.offer_id)
    emit(args.json, {"withdrawn": args.offer_id}, f"withdrew offer {args.offer_id}")
    return 0
