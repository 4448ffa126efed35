"""The checkout's view of the imported catalog: ``wl_node.checkout.offers.ImportedOffers`` over the snapshot.

Prices come from exactly the path the storefront shows (``ImportedView.get``: the current view's FX, masking
irrelevant here), so a member pays what the storefront displayed and the exporter re-checks the source price and
FX version.
"""

from __future__ import annotations

from decimal import Decimal

from wl_node.catalog.imported_view import ImportedView
from wl_node.catalog.visibility import importable_exporters
from wl_node.checkout.offers import ImportedOfferTerms
from wl_node.policy.state import PolicyState
from xwl_runtime.errors import NotFound


class CatalogImportedOffers:
    """Reads one imported offer as checkout terms; None when unknown or hidden by policy."""

    def __init__(self, view: ImportedView, state: PolicyState) -> None:
        self._view = view
        self._state = state

    async def get(self, imported_offer_id: str) -> ImportedOfferTerms | None:
        try:
            offer = await self._view.get(importable_exporters(self._state), imported_offer_id, unmasked=False)
        except NotFound:
            return None
        return ImportedOfferTerms(
            imported_offer_id=offer.imported_offer_id,
            exporter_wl=offer.source_wl,
            source_offer_id=offer.source_offer_id,
            source_currency=offer.source_price.currency,
            source_unit_price=Decimal(offer.source_price.amount),
            currency=offer.price.currency,
            unit_price=Decimal(offer.price.amount),
            fx_version=offer.fx_version,
            available=offer.available,
        )
