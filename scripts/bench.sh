#!/usr/bin/env bash
# Benchmarks grantex-vaultd (release build) against Redis, an echo round trip and openssl, in one
# run, and prints the figures and ratios as Markdown. Installs redis-server/redis-tools if missing.
#   scripts/bench.sh                      # 3 s per run, 1/16/64 connections, anchors, 100k credentials
#   scripts/bench.sh --duration 1         # quicker; any grantex-vault-bench option passes through
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "bench: installing redis-server redis-tools" >&2
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
# redis-server from the package may already run as a service; the benchmark starts its own on a
# Unix socket in a scratch directory, so the two do not meet.
swift build -c release --product grantex-vaultd
swift build -c release --product grantex-vault-bench
BIN="$(swift build -c release --show-bin-path)"
echo "# grantex-vault benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(uname -r)"
exec "$BIN/grantex-vault-bench" --daemon "$BIN/grantex-vaultd" --large "$@"
