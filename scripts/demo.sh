#!/usr/bin/env bash
# The main job, end to end: builds, starts grantex-vaultd in --dev mode in a scratch folder, stores a
# credential with the CLI, lists and reads it back, then stops the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
swift build
BIN="$(swift build --show-bin-path)"
DEMO="$(mktemp -d /tmp/grantex-vault-demo.XXXXXX)"
cleanup() {
    [ -n "${DAEMON_PID:-}" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    rm -rf "$DEMO"
}
trap cleanup EXIT

cd "$DEMO"
"$BIN/grantex-vaultd" --dev 2>"$DEMO/daemon.log" &
DAEMON_PID=$!
export GRANTEX_VAULT_SOCKET="$DEMO/.grantex-vault/vaultd.sock"
for _ in $(seq 100); do "$BIN/grantex-vault" health >/dev/null 2>&1 && break; sleep 0.1; done

echo "\$ grantex-vault health"
"$BIN/grantex-vault" health
echo
echo "\$ printf %s gho_demo_token | grantex-vault store --principal-id user_alice --service github --metadata '{\"scopes\":[\"repo\"]}'"
printf %s gho_demo_token | "$BIN/grantex-vault" store --principal-id user_alice --service github --metadata '{"scopes":["repo"]}'
echo
echo "\$ grantex-vault list"
"$BIN/grantex-vault" list
ID="$("$BIN/grantex-vault" --json list | python3 -c 'import json,sys; print(json.load(sys.stdin)["credentials"][0]["id"])')"
echo
echo "\$ grantex-vault get $ID"
"$BIN/grantex-vault" get "$ID"
echo
echo "On disk (sealed; the token is not there):"
ls -l "$DEMO/.grantex-vault/state"
if grep -q gho_demo_token "$DEMO/.grantex-vault/state/"*; then echo "FAIL: token found on disk" >&2; exit 1; fi
echo "grep gho_demo_token state/*: no match"
