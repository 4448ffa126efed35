"""``xcwl catalog list``: a node's imported catalog through its local API (ListImportedOffers).

Prices are shown as the importer computed them (source price, converted price, FX and FX version used); the trader
manager's contact comes back masked unless the calling app holds the node's PII scope.
"""

from __future__ import annotations

import argparse

from .node_client import NodeClient, add_node_flags, node_command
from .output import emit, to_dict
from .render_trade import imported_offers_table


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    catalog = sub.add_parser("catalog", help="a node's imported catalog (the WL's local API)")
    c_sub = catalog.add_subparsers(dest="catalog_cmd", required=True)

    listing = c_sub.add_parser("list", help="imported offers with converted prices (ListImportedOffers)")
    add_node_flags(listing)
    listing.add_argument("--source-wl", default="", help="only offers exported by this WL")
    listing.add_argument("--category", default="", help="only offers in this category")
    listing.add_argument("--text", default="", help="only offers whose title or description contains this text")
    listing.set_defaults(func=node_command(_list))

    get = c_sub.add_parser("get", help="one imported offer (GetImportedOffer)")
    add_node_flags(get)
    get.add_argument("--offer", required=True, metavar="SOURCE_WL:OFFER_ID", help="imported offer id")
    get.set_defaults(func=node_command(_get))


async def _list(args: argparse.Namespace, client: NodeClient) -> int:
    offers = await client.list_imported(source_wl=args.source_wl, category=args.category, text=args.text)
    emit(args.json, {"offers": [to_dict(o) for o in offers]},
         f"{len(offers)} imported offer(s)\n{imported_offers_table(offers)}")
    return 0


async def _get(args: argparse.Namespace, client: NodeClient) -> int:
    offer = await client.get_imported(args.offer)
    emit(args.json, {"offer": to_dict(offer)}, imported_offers_table([offer]))
    return 0
