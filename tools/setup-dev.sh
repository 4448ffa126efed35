#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian machine, then the project in .venv:
# the toolchains behind the other languages' stubs (Go from Debian, Node.js/npm), Prometheus (the metrics test's
# scraper), Chromium (the dashboard's browser tests drive it through Playwright; no browser download), the TypeScript example's pinned npm packages, and the Python package with its dev extra.
# Each step runs only when something is missing, so a second run is quick and offline.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v go >/dev/null || need+=(golang-go)
command -v protoc-gen-go >/dev/null || need+=(protoc-gen-go)
command -v protoc-gen-go-grpc >/dev/null || need+=(protoc-gen-go-grpc)
[ -d /usr/share/gocode/src/google.golang.org/grpc ] || need+=(golang-google-grpc-dev)
[ -d /usr/share/gocode/src/google.golang.org/protobuf ] || need+=(golang-google-protobuf-dev)
[ -d /usr/share/gocode/src/google.golang.org/genproto/googleapis/rpc ] || need+=(golang-google-genproto-dev)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || need+=(prometheus)
[ -x /usr/bin/chromium ] || need+=(chromium)
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# The TypeScript plugin and example dependencies, pinned by package-lock.json (npm's cache makes reruns offline).
[ -x examples/typescript/node_modules/.bin/tsc ] \
  || (cd examples/typescript && npm ci --prefer-offline --no-audit --no-fund)

python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]'
