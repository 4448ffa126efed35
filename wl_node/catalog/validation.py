"""Validation of an exportable offer sent by the WL's own services: every rule, every bad field named.

Runs before anything touches the store, so a refused request persists nothing. Field names in violations are the
request's field paths (``offer.unit_price.amount``), which is what callers see in ``google.rpc.BadRequest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

from xporty.trader.v1 import offer_pb2
from xwl_runtime.errors import FieldViolation, InvalidArgument
from xwl_runtime.money import MoneyError, parse_price
from xwl_runtime.text import text_violation

OFFER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""Offer ids: no ':' (imported ids are "<wl>:<offer_id>"), no spaces, at most 128 characters."""
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
PHONE_RE = re.compile(r"^\+?[0-9 ().-]{7,30}$")
TITLE_MAX, CATEGORY_MAX, DESCRIPTION_MAX = 200, 100, 5000
NAME_MAX, EMAIL_MAX = 200, 254
PHONE_DIGITS = (7, 15)  # E.164 allows at most 15 digits
MAX_IMAGES, URL_MAX = 20, 2048
STOCK_MAX = 2**62


@dataclass(frozen=True)
class ValidOffer:
    """An offer that passed every rule, in domain types."""

    offer_id: str
    title: str
    description: str
    category: str
    currency: str
    unit_price: Decimal
    stock: int
    image_urls: tuple[str, ...]
    manager_name: str
    manager_email: str
    manager_phone: str


def check_offer_id(value: str, field: str) -> list[FieldViolation]:
    if not OFFER_ID_RE.match(value):
        return [FieldViolation(field, "1..128 characters: letters, digits, '.', '_' or '-', starting alphanumeric")]
    return []


def _text(value: str, field: str, low: int, high: int) -> list[FieldViolation]:
    if not low <= len(value) <= high or (low and not value.strip()):
        return [FieldViolation(field, f"must be {low}..{high} characters" + (", not blank" if low else ""))]
    violation = text_violation(field, value, max_chars=high)
    return [violation] if violation is not None else []


def _image_urls(urls: list[str]) -> list[FieldViolation]:
    if len(urls) > MAX_IMAGES:
        return [FieldViolation("offer.image_urls", f"at most {MAX_IMAGES} image URLs")]
    out: list[FieldViolation] = []
    for i, url in enumerate(urls):
        parts = urlsplit(url) if len(url) <= URL_MAX and url.isprintable() and " " not in url else None
        if parts is None or parts.scheme != "https" or not parts.hostname:
            out.append(FieldViolation(f"offer.image_urls[{i}]", f"must be an https URL of at most {URL_MAX} chars"))
    return out


def _contact(contact: offer_pb2.TraderContact) -> list[FieldViolation]:
    out = _text(contact.name, "offer.manager.name", 1, NAME_MAX)
    if len(contact.email) > EMAIL_MAX or not EMAIL_RE.match(contact.email):
        out.append(FieldViolation("offer.manager.email", "must be an e-mail address like name@example.com"))
    digits = sum(ch.isdigit() for ch in contact.phone)
    if not PHONE_RE.match(contact.phone) or not PHONE_DIGITS[0] <= digits <= PHONE_DIGITS[1]:
        out.append(FieldViolation("offer.manager.phone", "must be a phone number of 7..15 digits, optional leading +"))
    return out


def validate_offer(offer: offer_pb2.Offer, *, currency: str, decimals: int) -> ValidOffer:
    """The offer as domain values, or InvalidArgument naming every bad field (contact values never echoed)."""
    violations = check_offer_id(offer.offer_id, "offer.offer_id")
    violations += _text(offer.title, "offer.title", 1, TITLE_MAX)
    violations += _text(offer.category, "offer.category", 1, CATEGORY_MAX)
    violations += _text(offer.description, "offer.description", 0, DESCRIPTION_MAX)
    price: Decimal | None = None
    if offer.unit_price.currency != currency:
        violations.append(FieldViolation("offer.unit_price.currency",
                                         f"unknown currency: this WL trades in {currency}"))
    else:
        try:
            price = parse_price(offer.unit_price.amount, decimals)
        except MoneyError as err:
            violations.append(FieldViolation("offer.unit_price.amount", f"{err} ({currency} allows {decimals})"))
    if not 0 <= offer.stock <= STOCK_MAX:
        violations.append(FieldViolation("offer.stock", "must be >= 0"))
    violations += _image_urls(list(offer.image_urls))
    violations += _contact(offer.manager)
    if violations:
        first = violations[0]
        raise InvalidArgument(f"{first.field}: {first.description}", violations=violations)
    assert price is not None
    return ValidOffer(
        offer_id=offer.offer_id, title=offer.title, description=offer.description, category=offer.category,
        currency=currency, unit_price=price, stock=offer.stock, image_urls=tuple(offer.image_urls),
        manager_name=offer.manager.name, manager_email=offer.manager.email, manager_phone=offer.manager.phone,
    )
