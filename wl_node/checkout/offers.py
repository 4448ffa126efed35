"""What the checkout needs to know about an imported offer; the catalog feature provides it.

``ImportedOffers.get`` reads the importer's snapshot (``imported_offers`` of the catalog): the exporter and its
offer id, the source price the exporter will check, the converted local price, the FX version used and whether
the offer is currently available (exporter reachable, pair not disabled).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class ImportedOfferTerms:
    """One imported offer as the checkout prices it."""

    imported_offer_id: str
    exporter_wl: str
    source_offer_id: str
    source_currency: str
    source_unit_price: Decimal
    currency: str
    unit_price: Decimal
    fx_version: int
    available: bool = True


class ImportedOffers(Protocol):
    """Read access to the imported catalog."""

    async def get(self, imported_offer_id: str) -> ImportedOfferTerms | None:
        """The offer, or None when unknown or hidden."""
