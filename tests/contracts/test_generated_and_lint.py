"""Contracts: generated stubs (every language) match proto/, and buf lint and breaking pass from the root."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("xporty", "ts", "go")
"""generated/ subtrees: Python (+ the descriptor set), TypeScript, Go."""


def _tree_diff(a: Path, b: Path) -> list[str]:
    diffs: list[str] = []
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    diffs += [f"only in generated/: {a / n}" for n in cmp.left_only]
    diffs += [f"missing from generated/: {a / n}" for n in cmp.right_only]
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    diffs += [f"stale: {a / n}" for n in mismatch + errors]
    for sub in cmp.common_dirs:
        diffs += _tree_diff(a / sub, b / sub)
    return diffs


def test_generated_code_is_up_to_date_in_every_language(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate_protos.py"), "--out", str(tmp_path)], check=True
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(LANGUAGES)
    diffs = [d for lang in LANGUAGES for d in _tree_diff(ROOT / "generated" / lang, tmp_path / lang)]
    assert diffs == [], "generated/ is stale; run: python tools/generate_protos.py\n" + "\n".join(diffs)
    # Every contract file has its stub in each language (the comparison above is only as good as the generation).
    for proto in (ROOT / "proto" / "xporty").rglob("*.proto"):
        rel = proto.relative_to(ROOT / "proto").with_suffix("")
        assert (ROOT / "generated" / f"{rel}_pb2.py").exists()
        assert (ROOT / "generated" / "ts" / f"{rel}.ts").exists()
        assert (ROOT / "generated" / "go" / f"{rel}.pb.go").exists()
    for error_model in ("status", "error_details", "code"):
        assert (ROOT / "generated" / "ts" / "google" / "rpc" / f"{error_model}.ts").exists()


def _buf() -> str:
    local = Path(sys.executable).parent / "buf"
    found = str(local) if local.exists() else shutil.which("buf")
    assert found, "buf not installed (pip install buf-bin)"
    return found


def test_buf_lint_passes_from_the_root() -> None:
    result = subprocess.run([_buf(), "lint"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_reports_an_uncommented_element(tmp_path: Path) -> None:
    """The lint configuration has teeth: a message without a comment fails it."""
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    (tmp_path / "proto" / "xporty" / "common" / "v1" / "bare.proto").write_text(
        'syntax = "proto3";\n\npackage xporty.common.v1;\n\nmessage Bare {\n  string x = 1;\n}\n')
    result = subprocess.run([_buf(), "lint"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "bare.proto" in result.stdout and "comment" in result.stdout.lower()


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_buf_breaking_from_the_root_against_the_committed_contracts() -> None:
    """``buf breaking`` runs from the root against HEAD (the working tree may only add to the contracts)."""
    if _git("rev-parse", "-q", "--verify", "HEAD").returncode != 0:
        pytest.skip("not a git checkout")
    if _git("cat-file", "-e", "HEAD:buf.yaml").returncode != 0:
        pytest.skip("HEAD still has the old proto/buf.yaml layout (.ci/run handles that transition)")
    result = subprocess.run([_buf(), "breaking", "--against", ".git#ref=HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_detects_a_removed_field(tmp_path: Path) -> None:
    """Breaking FILE has teeth: deleting a field of a committed message is reported."""
    shutil.copytree(ROOT / "proto", tmp_path / "before" / "proto")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "before" / "buf.yaml")
    shutil.copytree(tmp_path / "before", tmp_path / "after")
    money = tmp_path / "after" / "proto" / "xporty" / "common" / "v1" / "money.proto"
    text = money.read_text()
    assert "string amount = 2;" in text
    money.write_text(text.replace("string amount = 2;", "reserved 2;"))
    result = subprocess.run([_buf(), "breaking", "--against", str(tmp_path / "before")], cwd=tmp_path / "after",
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "amount" in result.stdout, result.stdout + result.stderr
