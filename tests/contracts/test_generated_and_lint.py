"""Contracts: generated stubs match proto/, and buf lint (STANDARD + COMMENTS) passes."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tree_diff(a: Path, b: Path) -> list[str]:
    diffs: list[str] = []
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    diffs += [f"only in generated/: {n}" for n in cmp.left_only]
    diffs += [f"missing from generated/: {n}" for n in cmp.right_only]
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    diffs += [f"stale: {a / n}" for n in mismatch + errors]
    for sub in cmp.common_dirs:
        diffs += _tree_diff(a / sub, b / sub)
    return diffs


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate_protos.py"), "--out", str(tmp_path)], check=True
    )
    diffs = _tree_diff(ROOT / "generated" / "xporty", tmp_path / "xporty")
    assert diffs == [], "generated/ is stale; run: python tools/generate_protos.py\n" + "\n".join(diffs)


def _buf() -> str:
    local = Path(sys.executable).parent / "buf"
    found = str(local) if local.exists() else shutil.which("buf")
    assert found, "buf not installed (pip install buf-bin)"
    return found


def test_buf_lint_passes() -> None:
    result = subprocess.run([_buf(), "lint"], cwd=ROOT / "proto", capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
