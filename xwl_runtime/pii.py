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
    """``+55 11 91234-4321`` → ``+55 11 9****-4321``: country, area and first digit kept, last four kept."""
    digits = [i for i, ch in enumerate(phone) if ch.isdigit()]
    if len(digits) <= 4:
        return "*" * len(phone)
    keep_tail = set(digits[-4:])
    # Keep the leading groups (country and area code) and the first digit of the subscriber number.
    groups = re.split(r"(\s+)", phone)
    prefix_len = 0
    if len(groups) >= 5:
        prefix_len = len("".join(groups[:4]))
    keep_head = set(range(prefix_len + 1)) if prefix_len else set(digits[:1])
    out = []
    for i, ch in enumerate(phone):
        if ch.isdigit() and i not in keep_tail and i not in keep_head:
            out.append("*")
        else:
            out.append(ch)
    return "".join(out)


def mask_name(name: str) -> str:
    """``Joana Silva`` → ``J*** S***``."""
    return " ".join(f"{part[:1]}***" for part in name.split() if part)


def mask_text(value: str) -> str:
    return f"{value[:1]}***" if value else ""
