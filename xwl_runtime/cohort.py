"""Deterministic cohorts: which buyers a rollout stage admits, and which subjects a percentage flag is on for.

Both sides of a direction must reach the same answer without sharing buyer references, so everything is a hash:

* ``cohort_hash(importer_wl, buyer_reference)`` = hex SHA-256 of ``"xcwl-cohort/v1\\n<importer_wl>\\n<reference>"``.
  The importer computes it and sends it with PlaceOrder; the CP stores allow-lists as these hashes (it hashes the
  references an operator gives), so no buyer reference leaves the importer's node or lands in a policy view.
* ``bucket(hex_hash)`` = the first 8 hex digits as an integer modulo 10,000: a basis-point bucket. A stage with
  ``cohort_basis_points = p`` admits the buyers whose bucket is below ``p`` (so raising ``p`` keeps every buyer
  already admitted: the expansion cohort contains the pilot cohort).
* ``flag_bucket(flag, subject)`` does the same for percentage flags, salted by the flag name so that two flags at
  10% are not on for the same 10% of subjects.
"""

from __future__ import annotations

import hashlib
import re

BASIS_POINTS = 10_000
"""100% in basis points."""
COHORT_PREFIX = "xcwl-cohort/v1"
FLAG_PREFIX = "xcwl-flag/v1"
HASH_RE = re.compile(r"^[0-9a-f]{64}$")


def cohort_hash(importer_wl: str, buyer_reference: str) -> str:
    """The cohort hash of a buyer of ``importer_wl`` (hex SHA-256)."""
    return hashlib.sha256(f"{COHORT_PREFIX}\n{importer_wl}\n{buyer_reference}".encode()).hexdigest()


def bucket(hex_hash: str) -> int:
    """Basis-point bucket (0..9999) of a hex hash; a malformed hash falls in the last bucket (never admitted by a
    share below 100%)."""
    if not HASH_RE.match(hex_hash):
        return BASIS_POINTS - 1
    return int(hex_hash[:8], 16) % BASIS_POINTS


def in_share(hex_hash: str, basis_points: int) -> bool:
    """Whether the hash falls in the first ``basis_points`` buckets."""
    return basis_points >= BASIS_POINTS or bucket(hex_hash) < basis_points


def flag_bucket(flag_name: str, subject: str) -> int:
    """Basis-point bucket of ``subject`` for the percentage flag ``flag_name``."""
    return bucket(hashlib.sha256(f"{FLAG_PREFIX}\n{flag_name}\n{subject}".encode()).hexdigest())
