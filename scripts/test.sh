#!/usr/bin/env bash
# The test command: installs what is missing, builds once (debug, with the binaries the end-to-end
# tests start), and runs every test. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
