"""How commands print: a readable table or text by default, one JSON document with ``--json`` (for machines).

Errors never go through here: they are one line on stderr (see ``xcwl.errors``).

Everything printed for humans passes through ``printable``: text from the CP and the nodes (titles, WL names,
reasons, a node's error note) may hold terminal escape sequences, C0/C1 controls or bidi overrides planted by a WL,
and a terminal must show them as visible escapes, never obey them. JSON output is escaped by ``json.dumps``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every non-printable character (C0, DEL, C1, bidi overrides, zero-width, …) as a visible escape.

    ``keep_newlines`` keeps ``\\n`` for multi-line renderings built by this CLI; a table cell never keeps one.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or (keep_newlines and ch == "\n"):
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            code = ord(ch)
            width = 2 if code < 0x100 else 4 if code < 0x10000 else 8
            out.append(f"\\{'x' if width == 2 else 'u' if width == 4 else 'U'}{code:0{width}x}")
    return "".join(out)


def to_dict(message: Message) -> dict[str, Any]:
    """A proto message as a JSON-ready dict (proto field names, enums by name, defaults included)."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A left-aligned text table with a header line; cells are str()-ed."""
    text_rows = [[("" if c is None else printable(str(c))) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in text_rows]
    return "\n".join(lines)


def key_values(pairs: Mapping[str, Any]) -> str:
    """``key: value`` lines, keys aligned."""
    width = max((len(k) for k in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {printable(str(v))}" for k, v in pairs.items())


def emit(as_json: bool, data: Any, human: str) -> None:
    """Print ``data`` as JSON when asked, else the human rendering."""
    if as_json:
        print_json(data)
    else:
        print(printable(human, keep_newlines=True))
