"""Typed, immutable settings of a WL node process, validated once at the edge (the CLI)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from .cadence import IdleCadence

MAX_RECEIVE_BYTES = 1024 * 1024
"""Largest request on a node's listener: PublishOffer with a 5,000-character description and 20 image URLs of
2,048 characters is ~60 KB; PlaceOrder, ListOffers and Checkout requests are under 1 KB (docs/operations.md)."""

@dataclass(frozen=True)
class NodeSettings:
    """Every knob of a WL node, with its default."""

    wl_id: str
    """This node's WL id; must match its certificate's SPIFFE ID."""
    pki_dir: Path
    """PKI directory: ca.crt and wl-<id>.crt/.key (written by enrollment when absent)."""
    cp_target: str
    """host:port of the CP's mTLS listener."""
    db_url: str
    """SQLAlchemy URL of the node's store."""
    listen: str = "127.0.0.1:7500"
    """mTLS listener: TraderService for peers, StorefrontService for this WL's apps, health, reflection."""
    max_receive_bytes: int = MAX_RECEIVE_BYTES
    """Largest request message on the listener (refused by gRPC core, unread, above it)."""
    cp_enroll_target: str = ""
    """host:port of the CP's enrollment listener; used only when the node has no certificate yet."""
    bootstrap_token: str = ""
    """One-time enrollment token (only needed for the first start)."""
    state_dir: Path = Path("var/node")
    """Where the last-known-good policy view is persisted."""
    insecure_dev: bool = False
    """Plaintext everywhere; development only."""
    policy_pull_interval: dt.timedelta = dt.timedelta(seconds=30)
    """TTL: pull period while the policy stream is down."""
    policy_max_staleness: dt.timedelta = dt.timedelta(minutes=10)
    """The node reports NOT_SERVING when its view was last confirmed by the CP longer ago than this."""
    reconnect_cap: dt.timedelta = dt.timedelta(seconds=3)
    """Cap of the jittered reconnect backoff of the CP streams."""
    pii_apps: tuple[str, ...] = ()
    """Names of this WL's apps holding the PII scope: only they see trader managers' contacts unmasked in the
    local API (everyone else, operators included, gets them masked)."""
    order_timeout: dt.timedelta = dt.timedelta(milliseconds=300)
    """Deadline of one PlaceOrder/CancelOrder/GetOrder operation at a peer (all retries included)."""
    offer_digest_interval: dt.timedelta = dt.timedelta(seconds=60)
    """Period of the offer digest report to the CP (compensation plans); local offer changes report sooner."""
    data_key_file: Path | None = None
    """Key file of the data keys that encrypt personal data at rest (``xwl_runtime.fieldcrypt``); None means
    ``<state_dir>/data-keys.json``, created 0600 with a fresh key on first start. Ignored when ``data_keys_json``
    is set."""
    data_keys_json: str = field(default="", repr=False)
    """The key file's JSON given directly (the ``XCWL_DATA_KEYS`` environment variable, read at the CLI edge)."""
    contact_grants: tuple[str, ...] = ()
    """Peer WLs this exporter discloses clear trader contacts to (``TraderService/GetTraderContact``); everyone else
    gets PERMISSION_DENIED. Every request is recorded in the disclosure log either way."""
    pii_retention: dt.timedelta | None = None
    """How long the personal part of checkouts (the buyer reference) is kept; None keeps it. The trade record stays."""
    metrics_listen: str = ""
    """``HOST:PORT`` of the Prometheus scrape endpoint (plain HTTP ``/metrics``); empty = no endpoint."""
    cadence: IdleCadence = IdleCadence()
    """Idle cadence of every background loop (``wl_node.cadence``; ``docs/scaling.md``)."""
    migrate_in_child: bool = False
    """Apply the store's migrations in a short-lived child process (``xcwl wl serve`` does), so Alembic never
    occupies the long-lived node's memory."""
