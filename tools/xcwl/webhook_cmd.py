"""``xcwl webhook add|list|remove|test``: operator webhooks (WebhookService).

The CP POSTs signed JSON events (alerts, disables, enables, pair status, discrepancies) to each endpoint, retrying
with backoff until the dead letter; ``add`` prints the signing secret once (``docs/observability.md``).
"""

from __future__ import annotations

import argparse

from .ops_client import OpsClient, add_ops_flags, ops_command
from .output import emit, table, to_dict


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webhook = sub.add_parser("webhook", help="operator webhooks: signed event deliveries from the CP")
    w_sub = webhook.add_subparsers(dest="webhook_cmd", required=True)

    add = w_sub.add_parser("add", help="AddWebhook: register an endpoint; prints its signing secret once")
    add_ops_flags(add)
    add.add_argument("--url", required=True, help="http(s) URL receiving POSTed JSON events")
    add.add_argument("--event", action="append", default=[], metavar="TYPE",
                     help="deliver only this event type (repeatable; default: every type)")
    add.set_defaults(func=ops_command(_add))

    listing = w_sub.add_parser("list", help="endpoints with delivered / pending / dead-lettered counts")
    add_ops_flags(listing)
    listing.set_defaults(func=ops_command(_list))

    remove = w_sub.add_parser("remove", help="remove an endpoint and its undelivered events")
    add_ops_flags(remove)
    remove.add_argument("webhook_id")
    remove.set_defaults(func=ops_command(_remove))

    test = w_sub.add_parser("test", help="queue a webhook.test event to one endpoint")
    add_ops_flags(test)
    test.add_argument("webhook_id")
    test.set_defaults(func=ops_command(_test))


async def _add(args: argparse.Namespace, client: OpsClient) -> int:
    resp = await client.add_webhook(args.url, list(args.event))
    emit(args.json, {"webhook": to_dict(resp.webhook), "secret": resp.secret},
         f"webhook {resp.webhook.webhook_id} → {resp.webhook.url}\nsigning secret (shown once): {resp.secret}")
    return 0


async def _list(args: argparse.Namespace, client: OpsClient) -> int:
    hooks = await client.webhooks()
    emit(args.json, {"webhooks": [to_dict(h) for h in hooks]}, table(
        ["webhook", "url", "events", "delivered", "pending", "dead"],
        [(h.webhook_id, h.url, ",".join(h.event_types) or "*", h.delivered, h.pending, h.dead) for h in hooks]))
    return 0


async def _remove(args: argparse.Namespace, client: OpsClient) -> int:
    await client.remove_webhook(args.webhook_id)
    emit(args.json, {"removed": args.webhook_id}, f"removed {args.webhook_id}")
    return 0


async def _test(args: argparse.Namespace, client: OpsClient) -> int:
    delivery = await client.test_webhook(args.webhook_id)
    emit(args.json, {"delivery_id": delivery}, f"queued test delivery {delivery}")
    return 0
