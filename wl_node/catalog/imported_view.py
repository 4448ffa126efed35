"""How the storefront reads the imported snapshot: filters, stable paging, current FX, availability and masking.

Reads never trust the snapshot alone: rows are served only for exporters importable under the current policy view
(so PAUSED/BLOCKED/frozen/invisible pairs vanish at once), and a row priced under an older FX version than the
view's is re-priced on the fly from its source price (the sync job persists the same result shortly after).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wl_node.privacy.accounts import ERASED_MARK
from xporty.common.v1 import money_pb2
from xporty.node.v1 import storefront_pb2
from xporty.trader.v1 import offer_pb2
from xwl_runtime import pii
from xwl_runtime.errors import InvalidArgument, NotFound, echo
from xwl_runtime.money import canonical, format_amount
from xwl_runtime.text import bounded, human_text

from .offers import timestamp
from .snapshot import price_in
from .tables import imported_offers
from .validation import CATEGORY_MAX
from .visibility import ImportTerms

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 500
MAX_SEARCH_CHARS = 200
"""Search text is a phrase typed by a shopper, not a document: bounded before it reaches the LIKE matcher."""
MAX_WL_ID_CHARS, MAX_PAGE_TOKEN_CHARS = 63, 256
MAX_IMPORTED_ID_CHARS = MAX_WL_ID_CHARS + 1 + 128
"""``<source_wl>:<offer_id>``."""
Availability = Callable[[str], bool]
"""Whether an exporter can take orders now (False while its circuit is open or a signal disabled the pair)."""


def _encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    try:
        return str(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["after"])
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise InvalidArgument.field("page_token", "not a token returned by ListImportedOffers") from err


def contact(row: Any, *, unmasked: bool) -> offer_pb2.TraderContact:
    """The manager's contact as the snapshot holds it: masked, with the exporter's opaque handle.

    The importer never holds a clear contact; a caller with the PII scope asks the exporter for it with the
    handle (``TraderService/GetTraderContact``, granted and logged by the exporter). ``unmasked`` is kept for the
    callers' signature; it changes nothing here.
    """
    del unmasked
    if row.manager_email == ERASED_MARK:
        return offer_pb2.TraderContact(name=ERASED_MARK, email=ERASED_MARK, phone=ERASED_MARK)
    return offer_pb2.TraderContact(name=pii.mask_name(row.manager_name), email=pii.mask_email(row.manager_email),
                                   phone=pii.mask_phone(row.manager_phone), handle=row.contact_handle)


def to_proto(row: Any, terms: ImportTerms, *, unmasked: bool, available: bool) -> storefront_pb2.ImportedOffer:
    if row.fx_version == terms.fx_version:
        price, rate = row.price, row.fx_rate
        fx_version = row.fx_version
    else:  # the view moved to a new FX version; the sync job is re-pricing the snapshot right now
        price = format_amount(price_in(terms, Decimal(row.source_price)), terms.decimals)
        rate, fx_version = canonical(terms.fx_rate), terms.fx_version
    inverse = not terms.exporter_is_wl_a
    # fx_rate is "units of this WL per one source unit": the pair's rate, or its derived inverse shown to 12 places.
    shown_rate = canonical((1 / Decimal(rate)).quantize(Decimal("1e-12"))) if inverse else rate
    return storefront_pb2.ImportedOffer(
        imported_offer_id=row.imported_offer_id, source_wl=row.source_wl, source_offer_id=row.source_offer_id,
        title=row.title, description=row.description, category=row.category,
        source_price=money_pb2.Money(currency=row.source_currency, amount=row.source_price),
        price=money_pb2.Money(currency=terms.currency, amount=price), fx_rate=shown_rate, fx_version=fx_version,
        stock=row.stock, image_urls=json.loads(row.image_urls), manager=contact(row, unmasked=unmasked),
        available=available and Decimal(price) > 0, sync_time=timestamp(row.sync_time),
    )


class ImportedView:
    """Read side of the imported catalog."""

    def __init__(self, engine: AsyncEngine, availability: Availability | None = None) -> None:
        self._engine = engine
        self._available = availability or (lambda _exporter: True)

    async def list(
        self, importable: Mapping[str, ImportTerms], *, source_wl: str, category: str, text: str, page_size: int,
        page_token: str, unmasked: bool,
    ) -> tuple[list[storefront_pb2.ImportedOffer], str]:
        # Bounded before any query: a 50,000-character search would otherwise reach the LIKE matcher.
        bounded("source_wl", source_wl, max_chars=MAX_WL_ID_CHARS)
        human_text("category", category, max_chars=CATEGORY_MAX, required=False)
        human_text("text", text, max_chars=MAX_SEARCH_CHARS, required=False)
        bounded("page_token", page_token, max_chars=MAX_PAGE_TOKEN_CHARS)
        size = page_size or DEFAULT_PAGE_SIZE
        if size > MAX_PAGE_SIZE:
            size = MAX_PAGE_SIZE
        sources = [s for s in importable if not source_wl or s == source_wl]
        if not sources:
            if page_token:
                _decode_token(page_token)
            return [], ""
        t = imported_offers.c
        query = sa.select(imported_offers).where(t.source_wl.in_(sources))
        if category:
            query = query.where(t.category == category)
        if text:
            needle = text.lower()
            query = query.where(sa.or_(sa.func.lower(t.title).contains(needle, autoescape=True),
                                       sa.func.lower(t.description).contains(needle, autoescape=True)))
        if page_token:
            query = query.where(t.imported_offer_id > _decode_token(page_token))
        query = query.order_by(t.imported_offer_id).limit(size + 1)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        more = len(rows) > size
        rows = rows[:size]
        offers = [to_proto(r, importable[r.source_wl], unmasked=unmasked, available=self._available(r.source_wl))
                  for r in rows]
        return offers, _encode_token(rows[-1].imported_offer_id) if more else ""

    async def get(self, importable: Mapping[str, ImportTerms], imported_offer_id: str, *,
                  unmasked: bool) -> storefront_pb2.ImportedOffer:
        bounded("imported_offer_id", imported_offer_id, max_chars=MAX_IMPORTED_ID_CHARS)
        source, sep, _ = imported_offer_id.partition(":")
        if not sep:
            raise InvalidArgument.field("imported_offer_id", 'must be "<source_wl>:<source_offer_id>"')
        terms = importable.get(source)
        row = None
        if terms is not None:
            async with self._engine.connect() as conn:
                row = (await conn.execute(sa.select(imported_offers)
                                          .where(imported_offers.c.imported_offer_id == imported_offer_id))).first()
        if row is None or terms is None:
            raise NotFound(f"imported offer {echo(imported_offer_id)} not found",
                           metadata={"imported_offer_id": imported_offer_id})
        return to_proto(row, terms, unmasked=unmasked, available=self._available(source))
