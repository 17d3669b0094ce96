#!/usr/bin/env bash
# make demo: a simulated iPhone behind a simulated usbmuxd, backed up by
# `backupd run` when it is plugged in; then a backup whose cable is pulled
# halfway, and what backupd says about it. Runs in a temporary directory
# and cleans up after itself. backupd serves its web page on
# http://localhost:${WEB_PORT:-7374}/ while the demo runs.
set -euo pipefail
bin=${BIN:-bin}
tmp=$(mktemp -d /tmp/backupd-demo.XXXXXX)
sock=$tmp/usbmuxd.sock
conf=$tmp/config.toml
ctl() { "$bin/iphonesim" ctl --control "$sock.ctl" "$@"; }
backupd() { "$bin/backupd" "$@" --config "$conf"; }
cleanup() {
	[ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	[ -n "${spid:-}" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# The web page's port: WEB_PORT, or 7374.
web_port=${WEB_PORT:-7374}
mkdir -p "$tmp/backups"
cat >"$conf" <<CONF
state_dir = "$tmp/state"
backup_dir = "$tmp/backups"
usbmuxd = "UNIX:$sock"
[policy]
free_space_margin = 0
retry_limit = 0
[stability]
settle = "200ms"
[backup]
skip_icons = true
[web]
listen = "127.0.0.1:$web_port"
CONF
step cat config.toml
cat "$conf"

# One phone, unplugged for now; about 20 MB of files.
"$bin/iphonesim" --socket "$sock" --devices 1 --unplugged --files 300 --max-size 131072 >"$tmp/sim.log" 2>&1 &
spid=$!
for _ in $(seq 50); do [ -S "$sock.ctl" ] && break; sleep 0.1; done
[ -S "$sock.ctl" ] || { echo "demo: iphonesim did not start:"; cat "$tmp/sim.log"; exit 1; }
udid=$(ctl list | awk 'NR==1 {print $1}')
# A USB 2 cable's worth of speed, so that the backup takes a few seconds.
ctl fault "$udid" slow-link=8000000 >/dev/null

step backupd run '&'
"$bin/backupd" run --config "$conf" --log-format json >"$tmp/backupd.log" 2>&1 &
dpid=$!
for _ in $(seq 50); do [ -S "$tmp/state/backupd.sock" ] && break; sleep 0.1; done
[ -S "$tmp/state/backupd.sock" ] || { echo "demo: backupd did not start:"; cat "$tmp/backupd.log"; exit 1; }
echo "backupd is running (pid $dpid); its log is JSON since it is not on a terminal"
echo
printf '\033[1mThe web page: http://localhost:%s/\033[0m  (it follows the demo live)\n' "$web_port"
# On a terminal the demo waits for a person to open the page, and again
# before it stops; DEMO_WAIT=0 runs it straight through.
pause() {
	if [ -t 0 ] && [ "${DEMO_WAIT:-1}" != 0 ]; then
		printf '%s ' "$1"
		read -r _ || true
	fi
}
pause "Open the page, then press Enter to plug the iPhone in."

step backupd status
backupd status

step iphonesim ctl plug "$udid"
ctl plug "$udid"
step "backupd status   # every half second while the phone is backed up"
for _ in $(seq 100); do
	out=$(backupd status)
	case $out in *"backing up now"*) break ;; esac
	sleep 0.1
done
while :; do
	echo "$out"
	case $out in *"backing up now"*) ;; *) break ;; esac
	sleep 0.5
	out=$(backupd status)
done

step backupd history
backupd history

step "iphonesim ctl fault $udid unplug-after-bytes=6000000   # the cable will come out mid-backup"
ctl fault "$udid" unplug-after-bytes=6000000
step backupd backup --full --wait
rc=0
backupd backup --full --wait || rc=$?
echo "(exit code $rc: the backup failed)"

step backupd status
backupd status

echo
pause "The page is still up at http://localhost:$web_port/ (the failed run and its fix are on the phone's page). Press Enter to stop backupd."

step kill -TERM backupd
kill -TERM "$dpid"
rc=0
wait "$dpid" || rc=$?
dpid=
echo "backupd stopped, exit code $rc"

step backupd status
rc=0
backupd status || rc=$?
echo "(exit code $rc: the daemon is not running)"
echo
echo "The last good backup is still whole in backups/$udid (a failed backup never touches it):"
ls "$tmp/backups/$udid" | grep -v '^[0-9a-f][0-9a-f]$' | tr '\n' ' '
echo
