"""The one rule for human text fields (titles, descriptions, categories, names, reasons, error notes).

Such text is shown to people: in terminals by ``xcwl``, in other WLs' storefronts, in dashboards. A WL could plant
terminal escape sequences, NUL, C1 controls or bidi overrides there to hide or rewrite what an operator reads, so
every human text field refuses them on the CP and on the nodes, before any query:

- C0 controls U+0000–U+001F (no exception: a line break is not part of a title, name or reason), DEL U+007F and
  C1 controls U+0080–U+009F;
- bidi embeddings/overrides U+202A–U+202E and isolates U+2066–U+2069 (the "Trojan Source" characters).

Lengths are checked first, so an oversized value costs one ``len``. Violations name the field and never echo the
value.
"""

from __future__ import annotations

import re

from .errors import FieldViolation, InvalidArgument

_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
FORBIDDEN_DESCRIPTION = "control characters (C0, DEL, C1) and bidi overrides/isolates are not allowed"


def first_forbidden(value: str) -> int | None:
    """Index of the first control or bidi override character in ``value``, or None."""
    match = _FORBIDDEN.search(value)
    return match.start() if match else None


def text_violation(field: str, value: str, *, max_chars: int, min_chars: int = 0) -> FieldViolation | None:
    """The violation of a human text field (length, blank, forbidden characters), or None if it is acceptable."""
    if len(value) > max_chars:
        return FieldViolation(field, f"at most {max_chars} characters")
    if min_chars and (len(value) < min_chars or not value.strip()):
        return FieldViolation(field, "required" if min_chars == 1 else f"at least {min_chars} characters, not blank")
    index = first_forbidden(value)
    if index is not None:
        return FieldViolation(field, f"{FORBIDDEN_DESCRIPTION} (U+{ord(value[index]):04X} at {index})")
    return None


def human_text(field: str, value: str, *, max_chars: int, required: bool = True) -> str:
    """``value`` if it is an acceptable human text field, else InvalidArgument with a BadRequest naming ``field``."""
    violation = text_violation(field, value, max_chars=max_chars, min_chars=1 if required else 0)
    if violation is not None:
        raise InvalidArgument(f"{violation.field}: {violation.description}", violations=[violation])
    return value


def bounded(field: str, value: str, *, max_chars: int) -> str:
    """``value`` if at most ``max_chars`` long (ids, tokens, cursors), else InvalidArgument naming ``field``.

    For machine identifiers looked up in a store: the bound is checked before the query, and never echoed.
    """
    if len(value) > max_chars:
        raise InvalidArgument.field(field, f"at most {max_chars} characters")
    return value
