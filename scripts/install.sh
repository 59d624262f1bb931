#!/usr/bin/env bash
# Installs grantex-vault for systemd: binaries, units, sysusers.d/tmpfiles.d entries, the example
# config (never over an existing one), the docs; creates the master key if there is none.
#
#   sudo scripts/install.sh                 # build (release) and install under /usr/local
#   PREFIX=/usr DESTDIR=/tmp/pkg scripts/install.sh   # stage for a package (no key, no systemctl)
#   BIN_DIR=.build/release scripts/install.sh          # install already-built binaries
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
if [ -z "${BIN_DIR:-}" ]; then
    scripts/setup.sh
    swift build -c release
    BIN_DIR="$(swift build -c release --show-bin-path)"
fi

sed_prefix() { sed "s|/usr/local|$PREFIX|g" "$1"; }

install -d -m 0755 "$DESTDIR$PREFIX/bin" "$DESTDIR/etc/systemd/system" "$DESTDIR/etc/sysusers.d" "$DESTDIR/etc/tmpfiles.d" \
    "$DESTDIR$PREFIX/share/doc/grantex-vault"
install -d -m 0750 "$DESTDIR/etc/grantex-vault"
install -m 0755 "$BIN_DIR/grantex-vaultd" "$BIN_DIR/grantex-vault" "$DESTDIR$PREFIX/bin/"
for unit in grantex-vaultd.service grantex-vaultd.socket; do
    sed_prefix "systemd/$unit" > "$DESTDIR/etc/systemd/system/$unit"
    chmod 0644 "$DESTDIR/etc/systemd/system/$unit"
done
install -m 0644 systemd/sysusers.d/grantex-vault.conf "$DESTDIR/etc/sysusers.d/grantex-vault.conf"
install -m 0644 systemd/tmpfiles.d/grantex-vault.conf "$DESTDIR/etc/tmpfiles.d/grantex-vault.conf"
install -m 0644 README.md docs/*.md "$DESTDIR$PREFIX/share/doc/grantex-vault/"
if [ ! -e "$DESTDIR/etc/grantex-vault/vaultd.conf" ]; then
    install -m 0640 config/vaultd.conf.example "$DESTDIR/etc/grantex-vault/vaultd.conf"
fi

if [ -n "$DESTDIR" ]; then
    echo "install: staged under $DESTDIR (no users, key or systemctl)"
    exit 0
fi

command -v systemd-sysusers >/dev/null && systemd-sysusers /etc/sysusers.d/grantex-vault.conf
command -v systemd-tmpfiles >/dev/null && systemd-tmpfiles --create /etc/tmpfiles.d/grantex-vault.conf
chgrp grantex-vault /etc/grantex-vault /etc/grantex-vault/vaultd.conf 2>/dev/null || true
if [ ! -e /etc/grantex-vault/vault.key ]; then
    "$PREFIX/bin/grantex-vault" keygen /etc/grantex-vault/vault.key
    echo "install: created /etc/grantex-vault/vault.key: back it up offline; without it the store cannot be opened"
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "install: done. Next: edit /etc/grantex-vault/vaultd.conf (jwks, developer-id), then"
    echo "         systemctl enable --now grantex-vaultd.socket grantex-vaultd.service"
else
    echo "install: done (systemd is not running here: start grantex-vaultd by hand)"
fi
