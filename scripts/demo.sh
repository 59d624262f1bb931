#!/usr/bin/env bash
# The main job, end to end: builds, starts grantex-vaultd in --dev mode in a scratch folder, stores a
# credential with the CLI, signs a grant token with the local dev issuer, exchanges it for the
# credential, revokes it, checks the audit log, then stops the daemon.
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
"$BIN/grantex-vaultd" --dev >"$DEMO/daemon.out" 2>"$DEMO/daemon.log" &
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
echo "\$ export GRANTEX_GRANT_TOKEN=\$(grantex-vault dev token --principal-id user_alice --scope github:read)"
export GRANTEX_GRANT_TOKEN="$("$BIN/grantex-vault" dev token --principal-id user_alice --scope github:read)"
echo "(an RS256 grant token of ${#GRANTEX_GRANT_TOKEN} characters, verified by the daemon against its JWKS, no network)"
echo
echo "\$ grantex-vault exchange --service github"
"$BIN/grantex-vault" exchange --service github
echo
echo "\$ grantex-vault exchange --service slack     # the token is not scoped for slack"
"$BIN/grantex-vault" exchange --service slack || true
JTI="$(python3 -c 'import base64,json,os; p=os.environ["GRANTEX_GRANT_TOKEN"].split(".")[1]; p+="="*(-len(p)%4); print(json.loads(base64.urlsafe_b64decode(p))["jti"])')"
echo
echo "\$ grantex-vault revoke --jti $JTI && grantex-vault exchange --service github"
"$BIN/grantex-vault" revoke --jti "$JTI"
"$BIN/grantex-vault" exchange --service github || true
echo
echo "\$ grantex-vault audit show"
"$BIN/grantex-vault" audit show
echo
echo "\$ grantex-vault audit verify"
"$BIN/grantex-vault" audit verify
echo
echo "On disk (sealed; the token is not there):"
ls -l "$DEMO/.grantex-vault/state"
if grep -q gho_demo_token "$DEMO/.grantex-vault/state/"*; then echo "FAIL: token found on disk" >&2; exit 1; fi
echo "grep gho_demo_token state/*: no match"
