"""The Go stubs (generated/go) and the Go example build offline with Debian's Go toolchain and libraries."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORT_ROOT = "github.com/xporty/cross-wl"
"""The prefix of every go_package option in proto/."""
DEBIAN_GOPATH = Path("/usr/share/gocode")


def test_go_stubs_and_example_build_and_vet(tmp_path: Path) -> None:
    go = shutil.which("go")
    assert go, "Go is required: apt-get install golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev"
    assert (DEBIAN_GOPATH / "src" / "google.golang.org" / "grpc").is_dir(), "apt-get install golang-google-grpc-dev"
    # GOPATH mode: the repository's Go code at its import path, beside Debian's libraries; no module proxy.
    checkout = tmp_path / "src" / IMPORT_ROOT
    shutil.copytree(ROOT / "generated" / "go", checkout / "generated" / "go")
    shutil.copytree(ROOT / "examples" / "go", checkout / "examples" / "go")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": f"{tmp_path}:{DEBIAN_GOPATH}", "GOPROXY": "off",
           "GOFLAGS": ""}
    packages = [f"{IMPORT_ROOT}/generated/go/xporty/...", f"{IMPORT_ROOT}/examples/go/..."]
    for command in (["vet"], ["build", "-o", str(tmp_path / "bin") + "/"]):
        result = subprocess.run([go, *command, *packages], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "bin" / "wlservice").exists()
