#!/usr/bin/env bash
# make demo: a simulated iPhone behind a simulated usbmuxd, backed up by
# Debian's idevicebackup2 through USBMUXD_SOCKET_ADDRESS. Until the daemon
# exists this shows the simulator that every test runs against.
set -euo pipefail
bin=${BIN:-bin}
tmp=$(mktemp -d /tmp/backupd-demo.XXXXXX)
sock=$tmp/usbmuxd.sock
ctl() { "$bin/iphonesim" ctl --control "$sock.ctl" "$@"; }
cleanup() {
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

"$bin/iphonesim" --socket "$sock" --devices 1 --files 500 --max-size 256000 >"$tmp/sim.log" 2>&1 &
pid=$!
for _ in $(seq 50); do [ -S "$sock.ctl" ] && break; sleep 0.1; done
[ -S "$sock.ctl" ] || { echo "demo: iphonesim did not start:"; cat "$tmp/sim.log"; exit 1; }
export USBMUXD_SOCKET_ADDRESS=UNIX:$sock

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
step idevice_id -l
udid=$(idevice_id -l | head -1)
echo "$udid"
step ideviceinfo -k DeviceName
ideviceinfo -u "$udid" -k DeviceName
step idevicebackup2 backup --full "$tmp/backups"
mkdir -p "$tmp/backups"
idevicebackup2 -u "$udid" backup --full "$tmp/backups" | grep -v '^\[' | tail -4
step iphonesim ctl mutate "$udid" 0.02
ctl mutate "$udid" 0.02
step idevicebackup2 backup "$tmp/backups"
idevicebackup2 -u "$udid" backup "$tmp/backups" | grep -v '^\[' | tail -4
step ls "$tmp/backups/$udid"
ls "$tmp/backups/$udid" | grep -v '^[0-9a-f][0-9a-f]$'
echo "... and $(ls "$tmp/backups/$udid" | grep -c '^[0-9a-f][0-9a-f]$') folders of files named by SHA-1, the layout Finder and iTunes write"
echo
echo "The simulator ($bin/iphonesim) spoke usbmux, lockdown with TLS and mobilebackup2 to Debian's own tools."
