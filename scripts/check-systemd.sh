#!/usr/bin/env bash
# Checks the units in systemd/: `systemd-analyze verify` must pass and
# `systemd-analyze security --offline=yes` must report an exposure of at most 1.0.
# The units name /usr/local/bin/grantex-vaultd; a temporary copy points at the built binary instead,
# so the check runs before installation.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=1.0
bin="${1:-$(swift build --show-bin-path)/grantex-vaultd}"
[ -x "$bin" ] || { echo "check-systemd: $bin is not built" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "check-systemd: systemd-analyze not found" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for unit in systemd/*.service systemd/*.socket; do
    sed "s|/usr/local/bin/grantex-vaultd|$bin|g" "$unit" > "$work/$(basename "$unit")"
done

status=0
if ! out="$(systemd-analyze verify "$work"/*.service "$work"/*.socket 2>&1)" || [ -n "$out" ]; then
    echo "check-systemd: systemd-analyze verify reported:" >&2
    echo "$out" >&2
    status=1
fi
score="$(systemd-analyze security --offline=yes "$work/grantex-vaultd.service" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
if [ -z "$score" ]; then
    echo "check-systemd: no exposure score from systemd-analyze security" >&2
    status=1
elif awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s > l) }'; then
    echo "check-systemd: exposure $score is above $limit" >&2
    systemd-analyze security --offline=yes "$work/grantex-vaultd.service" 2>&1 | grep '✗' >&2 || true
    status=1
else
    echo "check-systemd: verify clean, exposure $score (limit $limit)"
fi
exit $status
