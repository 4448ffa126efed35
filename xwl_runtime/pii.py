"""Masking of personal data (trader managers' contacts) before it leaves a node."""

from __future__ import annotations

import re


def mask_email(email: str) -> str:
    """``jane.doe@example.com`` → ``j***@e***.com``."""
    if "@" not in email:
        return mask_text(email)
    local, _, domain = email.partition("@")
    host, dot, tld = domain.rpartition(".")
    if not dot:
        host, tld = domain, ""
    masked_host = f"{host[:1]}***" if host else "***"
    return f"{local[:1]}***@{masked_host}{'.' + tld if tld else ''}"


def mask_phone(phone: str) -> str:
    """``+55 11 91234-4321`` → ``+55 11 9****-4321``: the country code, a two-digit area code, the first digit of
    the subscriber number and the last four digits kept; every other digit starred (punctuation kept)."""
    digits = [i for i, ch in enumerate(phone) if ch.isdigit()]
    if len(digits) <= 6:
        return "".join("*" if ch.isdigit() else ch for ch in phone)
    groups = [(m.start(), m.end()) for m in re.finditer(r"\+?\(?\d+\)?", phone)]
    keep: set[int] = set(digits[-4:])
    rest = groups
    if rest and phone[rest[0][0]] == "+":
        start, end = rest[0]
        keep.update(range(start, min(end, start + 4)))  # "+CCC" at most: a glued number keeps only its country
        rest = rest[1:] if end - start <= 4 else rest
    if len(rest) >= 3 and sum(ch.isdigit() for ch in phone[slice(*rest[0])]) == 2:  # an area code
        keep.update(range(*rest[0]))
        rest = rest[1:]
    first = next((i for i in digits if i not in keep), None)
    if first is not None:
        keep.add(first)
    return "".join("*" if ch.isdigit() and i not in keep else ch for i, ch in enumerate(phone))


def mask_name(name: str) -> str:
    """``Joana Silva`` → ``J*** S***``."""
    return " ".join(f"{part[:1]}***" for part in name.split() if part)


def mask_text(value: str) -> str:
    return f"{value[:1]}***" if value else ""
