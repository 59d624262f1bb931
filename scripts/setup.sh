#!/usr/bin/env bash
# Installs what the build needs and is missing: libsodium's headers (Debian's libsodium-dev).
# Safe to run again; does nothing when everything is present.
set -euo pipefail

if ! pkg-config --exists libsodium 2>/dev/null; then
    echo "setup: installing libsodium-dev" >&2
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pkg-config libsodium-dev >/dev/null
fi
# The tests also use: setpriv (util-linux) to run a client as another uid; systemd-analyze and
# systemd-socket-activate (systemd) to check the units and socket activation.
missing=()
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
{ command -v systemd-analyze && command -v systemd-socket-activate; } >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
