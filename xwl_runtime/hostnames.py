"""Validation of the DNS names an operator may have certified for a server (a WL's endpoint names, the CP's).

A name is an RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, at most 63 characters
each and 253 in all, not purely numeric at the top level. Refused, because a certificate holding them would let
its owner pose as someone else: wildcards, IP literals, ``localhost``, and anything under the CA's reserved
suffix (``xwl_runtime.identity.PINNED_DOMAIN``), which only the CA assigns.
"""

from __future__ import annotations

import ipaddress
import re

from .identity import is_reserved_name

MAX_NAME_CHARS = 253
MAX_NAMES = 8
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
LOOPBACK_HOSTNAMES = frozenset({"localhost", "localhost.localdomain"})


def hostname_problem(name: str) -> str | None:
    """Why ``name`` may not be certified as an endpoint name, or None when it may (expects lower case)."""
    if not name:
        return "empty name"
    if len(name) > MAX_NAME_CHARS:
        return f"longer than {MAX_NAME_CHARS} characters"
    if "*" in name:
        return "wildcards are not allowed"
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return "IP addresses are not allowed"
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        return "not an RFC 1123 host name (letters, digits, inner '-', labels of 1-63)"
    if labels[-1].isdigit():
        return "the top-level label must not be numeric"
    if name in LOOPBACK_HOSTNAMES or name.endswith(".localhost"):
        return "loopback names are not allowed"
    if is_reserved_name(name):
        return "names under the CA's reserved suffix are assigned by the CA only"
    return None


def normalize(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Lower-cased, duplicates removed, order kept."""
    return tuple(dict.fromkeys(n.strip().lower() for n in names))
