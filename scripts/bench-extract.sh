#!/usr/bin/env bash
# bench-extract.sh: how fast `backupd extract` copies a backup out, plain
# and encrypted, against `cp -r` of the same backup on the same disk, and
# its peak memory (RSS) as the backup grows.
#
# For each size it starts the simulator with that many files, has
# Debian's idevicebackup2 make a plain and an encrypted backup into a
# backup_dir, then times, with the service not running:
#   cp -r <backup>                    the yardstick: the same bytes copied
#   backupd extract --to DIR          every file, plain
#   backupd extract --password-file   every file, encrypted (the simulator's
#                                     keybag has few rounds, so this is the
#                                     decryption; a real iPhone's 10,000,000
#                                     rounds add seconds once, see
#                                     BenchmarkUnlock in proto/backupcrypt)
# and prints MB/s (of file content) and peak RSS for each.
#
# Usage: scripts/bench-extract.sh [FILES...]   (default: 100 300 900)
# Needs: go, idevicebackup2 (libimobiledevice-utils), GNU time.
set -euo pipefail

cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 300 900)
for tool in go idevicebackup2 /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bench-extract: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d /tmp/bdbench.XXXXXX)
sim_pid=""
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/bin/" ./cmd/backupd ./cmd/iphonesim
bin=$work/bin

# measure LABEL BYTES CMD...: runs CMD under GNU time and prints one row.
measure() {
	local label=$1 bytes=$2
	shift 2
	sync
	/usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || {
		echo "bench-extract: $label failed:" >&2
		cat "$work/err" >&2
		exit 1
	}
	read -r secs rss <"$work/time"
	awk -v l="$label" -v b="$bytes" -v s="$secs" -v r="$rss" \
		'BEGIN { printf "  %-20s %8.2f s  %8.1f MB/s  peak RSS %6.1f MiB\n", l, s, (s > 0 ? b / s / 1e6 : 0), r / 1024 }'
}

for n in "${sizes[@]}"; do
	run=$work/run$n
	mkdir -p "$run/backups" "$run/state"
	sock=$run/mux.sock
	"$bin/iphonesim" --socket "$sock" --files "$n" --min-size $((256 << 10)) --max-size $((1 << 20)) --seed 5 >"$run/sim.log" 2>&1 &
	sim_pid=$!
	for _ in $(seq 100); do [ -S "$sock.ctl" ] && break; sleep 0.1; done
	udid=$("$bin/iphonesim" ctl --control "$sock.ctl" list | awk 'length($1) == 40 { print $1; exit }')
	export USBMUXD_SOCKET_ADDRESS=UNIX:$sock
	printf 'state_dir = "%s"\nbackup_dir = "%s"\nusbmuxd = "UNIX:%s"\n' "$run/state" "$run/backups" "$sock" >"$run/c.toml"
	echo pw >"$run/pw"

	for kind in plain encrypted; do
		rm -rf "${run:?}/backups/$udid" "$run/out" "$run/copy"
		if [ "$kind" = encrypted ]; then
			idevicebackup2 -u "$udid" encryption on pw "$run/backups" >/dev/null
		fi
		idevicebackup2 -u "$udid" backup --full "$run/backups" >"$run/ib.log" 2>&1 ||
			{ cat "$run/ib.log" >&2; exit 1; }
		bytes=$("$bin/backupd" files --json --password-file "$run/pw" --config "$run/c.toml" 2>/dev/null |
			awk -F'"size":' 'NF > 1 { split($2, a, ","); s += a[1] } END { print s }')
		if [ "$kind" = plain ]; then
			echo "$n files, $(awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1e6 }') MB of content:"
			measure "cp -r" "$bytes" cp -r "$run/backups/$udid" "$run/copy"
			rm -rf "$run/copy"
		fi
		measure "extract $kind" "$bytes" "$bin/backupd" extract --password-file "$run/pw" --to "$run/out" --config "$run/c.toml"
	done
	kill "$sim_pid"
	wait "$sim_pid" 2>/dev/null || true
	sim_pid=""
	rm -rf "$run"
done
