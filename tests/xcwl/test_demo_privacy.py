"""After ``xcwl demo --workdir D``: no store under D holds a manager's e-mail, phone or name in clear (a byte search
of every database file, WAL included), every log line the run wrote passes the redaction corpus check, and the
exporter's operator can still export the subject (the data is there, encrypted, readable with the key file)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from tests.xcwl.runner import xcwl
from xcwl.demo_trade import MANAGERS
from xwl_runtime.redact import valid_cnpj, valid_cpf

DEMO_BUDGET_S = 120.0

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{2,}\.")
# A bare CPF/CNPJ stands alone: eleven digits inside a hex id ("...e91151015415f...") are part of that id, the same
# boundary the log redactor draws.
_DIGITS = re.compile(r"(?<![\w.\-/])(?:\d{11}|\d{14})(?![\w\-/]|\.\d)")


def _needles() -> list[bytes]:
    out: list[bytes] = []
    for contact in MANAGERS.values():
        digits = "".join(ch for ch in contact.phone if ch.isdigit())
        out += [contact.email.encode(), contact.name.encode(), contact.phone.encode(), digits[-8:].encode(),
                contact.email.split("@")[0].encode()]
    return out


def _corpus_violations(text: str) -> list[str]:
    """What no log line may hold: a clear demo contact, an e-mail, a JWT, a bootstrap token, a PEM block, a valid
    CPF/CNPJ."""
    found = [n.decode() for n in _needles() if n.decode() in text]
    found += [m for m in _EMAIL.findall(text) if "***" not in m]
    found += _JWT.findall(text)
    found += [t for t in re.findall(r"xbt_[A-Za-z0-9_-]+", text) if t != "xbt_"]
    found += ["PEM"] if "-----BEGIN" in text else []
    found += [d for d in _DIGITS.findall(text) if valid_cpf(d) or valid_cnpj(d)]
    return found


async def test_demo_leaves_no_clear_contact_in_any_store_or_log(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    result = await xcwl("demo", "--workdir", str(work), timeout=DEMO_BUDGET_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    stores = [p for p in work.rglob("*") if p.is_file() and re.search(r"\.db(-wal|-shm|-journal)?$", p.name)]
    assert {p.parent.name for p in stores if p.name.endswith(".db")} >= {"wl-a", "wl-b", "wl-c"}
    for path in stores:
        raw = path.read_bytes()
        leaked = [n.decode() for n in _needles() if n in raw]
        assert not leaked, f"{path.relative_to(work)} holds {leaked}"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    for keys in work.glob("*/state/data-keys.json"):
        assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600, keys

    logs = sorted(work.rglob("*.log"))
    assert logs, "the demo writes one log per process"
    lines = 0
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            lines += 1
            bad = _corpus_violations(line)
            assert not bad, f"{path.name}: {bad} in {line[:300]}"
    assert lines > 50
    assert not _corpus_violations(result.stdout + result.stderr)

    # The exporter's operator reads the subject back with the node's key file: encrypted, not lost.
    a = work / "wl-a"
    exported = await xcwl("privacy", "export", "--db", f"sqlite:///{a / 'node.db'}", "--wl-id", "wl-a",
                          "--key-file", str(a / "state" / "data-keys.json"), "--subject", MANAGERS["wl-a"].email)
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert data["trader_accounts"][0]["contact"]["name"] == MANAGERS["wl-a"].name
    assert {o["offer_id"] for o in data["offers"]} == {"a-1", "a-2", "a-3"}
