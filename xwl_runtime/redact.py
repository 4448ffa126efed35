"""The one redaction layer for every log line and error message that leaves a process.

``redact(text)`` replaces, in this order (secrets first, so a token is never half-read as a phone number):

* PEM blocks (certificates, keys, CSRs) → ``[pem]``;
* JWTs (three base64url parts, the first a JSON header ``eyJ…``) → ``[jwt]``;
* bootstrap tokens ``xbt_…`` → ``xbt_[redacted]``;
* e-mail addresses → ``j***@e***.com`` (``pii.mask_email``);
* CPF (``123.456.789-09`` or 11 bare digits) and CNPJ (``12.345.678/0001-95`` or 14 bare digits) whose check digits
  are valid → ``[cpf]`` / ``[cnpj]``; a number with bad check digits is not a CPF/CNPJ and is left alone;
* phone numbers → the digits but the last two starred, punctuation kept: international ``+CC …`` with 8 to 15
  digits, Brazilian with punctuation (``(11) 91234-4321``, ``11 3456-7890``) and bare Brazilian mobiles
  (``11912344321``, ``5511912344321``: area code, then 9, then eight digits).

Bare digit runs that are neither a valid CPF/CNPJ nor shaped like a Brazilian mobile (order numbers, sequences,
epoch times, amounts) are left alone: redaction must not make logs unreadable.

``redact_fields`` also blanks the values of keys declared personal (``PERSONAL_FIELDS``), whatever they hold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import pii

PERSONAL_FIELDS = frozenset({
    "manager_name", "manager_email", "manager_phone", "contact_name", "contact_email", "contact_phone",
    "display_name", "buyer_reference", "email", "phone", "cpf", "cnpj", "bootstrap_token", "token",
    "authorization", "private_key", "key_pem",
})
"""Structured log fields whose value is personal or secret by declaration: replaced by ``[redacted]``."""

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_BOOTSTRAP = re.compile(r"\bxbt_[A-Za-z0-9_-]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Digit-shaped identifiers must not be glued to other digits or letters (part of a longer id, a hash, a UUID).
_CPF = re.compile(r"(?<![\w.\-/])(\d{3}\.\d{3}\.\d{3}-\d{2}|\d{11})(?![\w\-/]|\.\d)")
_CNPJ = re.compile(r"(?<![\w.\-/])(\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}|\d{14})(?![\w\-/]|\.\d)")
_INTL_PHONE = re.compile(r"(?<![\w+])\+\d[\d\s().-]{5,22}\d(?![\w])")
_BR_PHONE = re.compile(
    r"(?<![\w+(])(?:\(\d{2}\)\s?|\d{2}[\s.-])9?\d{4}[\s.-]\d{4}(?![\w])"  # (11) 91234-4321, 11 3456-7890
    r"|(?<![\w+])(?:55)?[1-9]{2}9\d{8}(?![\w])"  # bare mobile 11912344321 / 5511912344321
)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def valid_cpf(text: str) -> bool:
    """Whether ``text`` (punctuation ignored) is a CPF with valid check digits (repeated digits are not)."""
    d = [int(c) for c in _digits(text)]
    if len(d) != 11 or len(set(d)) == 1:
        return False
    for n in (9, 10):
        total = sum(v * w for v, w in zip(d[:n], range(n + 1, 1, -1), strict=True))
        if (total * 10 % 11) % 10 != d[n]:
            return False
    return True


def valid_cnpj(text: str) -> bool:
    """Whether ``text`` (punctuation ignored) is a CNPJ with valid check digits."""
    d = [int(c) for c in _digits(text)]
    if len(d) != 14 or len(set(d)) == 1:
        return False
    weights = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
    for n in (12, 13):
        w = weights if n == 12 else [6, *weights]
        rest = sum(v * k for v, k in zip(d[:n], w, strict=True)) % 11
        if (0 if rest < 2 else 11 - rest) != d[n]:
            return False
    return True


def mask_digits(text: str, keep: int = 2) -> str:
    """Every digit but the last ``keep`` starred; punctuation and spaces kept (the shape stays readable)."""
    positions = [i for i, ch in enumerate(text) if ch.isdigit()]
    hidden = set(positions[:-keep] if keep else positions)
    return "".join("*" if i in hidden else ch for i, ch in enumerate(text))


def _phone(match: re.Match[str]) -> str:
    value = match.group(0)
    count = len(_digits(value))
    if value.startswith("+") and not 8 <= count <= 15:
        return value
    return mask_digits(value)


def redact(text: str) -> str:
    """``text`` with every secret and personal datum this module knows replaced (see the module docstring)."""
    if not text:
        return text
    text = _PEM.sub("[pem]", text)
    text = _JWT.sub("[jwt]", text)
    text = _BOOTSTRAP.sub("xbt_[redacted]", text)
    text = _EMAIL.sub(lambda m: pii.mask_email(m.group(0)), text)
    text = _CNPJ.sub(lambda m: "[cnpj]" if valid_cnpj(m.group(0)) else m.group(0), text)
    text = _CPF.sub(lambda m: "[cpf]" if valid_cpf(m.group(0)) else m.group(0), text)
    text = _INTL_PHONE.sub(_phone, text)
    return _BR_PHONE.sub(_phone, text)


def redact_value(key: str, value: Any) -> Any:
    """A structured field's value as it may be logged: declared personal keys blanked, strings redacted."""
    if key.lower() in PERSONAL_FIELDS and value not in (None, ""):
        return "[redacted]"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return redact_fields(value)
    if isinstance(value, list | tuple):
        return [redact_value(key, item) for item in value]
    return value


def redact_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` with ``redact_value`` applied to each entry."""
    return {str(k): redact_value(str(k), v) for k, v in fields.items()}
