#!/usr/bin/env bash
# idle-cpu.sh: how much CPU the daemon uses while nothing happens.
#
# Starts a simulated usbmuxd with no iPhone plugged in (iphonesim
# --unplugged) and the daemon against it, lets it settle, then reads the
# daemon's utime+stime from /proc/<pid>/stat before and after a quiet
# window (60 s by default) and prints the difference. /proc/<pid>/stat
# counts in clock ticks (usually 10 ms), so the threads' run time from
# /proc/<pid>/task/*/sched (se.sum_exec_runtime, in ms with six decimals)
# is printed beside it where the kernel has it.
#
# The daemon runs as the daemon package's test binary in daemon mode
# (BACKUPD_TEST_DAEMON=<config.json>, see daemon/helpers_test.go), built
# without -race, until cmd/backupd has its run command.
#
#   scripts/idle-cpu.sh               # usbmuxd up, no phone
#   NO_USBMUXD=1 scripts/idle-cpu.sh  # no usbmuxd at all (Linux without a phone)
#   DURATION=10 scripts/idle-cpu.sh   # a shorter window
#
# Linux only (/proc).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-60}
warmup=${WARMUP:-3}
go=${GO:-go}

tmp=$(mktemp -d /tmp/backupd-idle.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

"$go" build -o "$tmp/iphonesim" ./cmd/iphonesim
"$go" test -c -o "$tmp/daemon.test" ./daemon

sock=$tmp/usbmuxd.sock
if [ -z "${NO_USBMUXD:-}" ]; then
	"$tmp/iphonesim" --socket "$sock" --unplugged >"$tmp/sim.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	[ -S "$sock" ] || { echo "idle-cpu: iphonesim did not start:"; cat "$tmp/sim.log"; exit 1; }
fi

mkdir -p "$tmp/backups"
cat >"$tmp/config.json" <<EOF
{"StateDir": "$tmp/state", "BackupDir": "$tmp/backups", "Usbmuxd": "UNIX:$sock", "LogLevel": "info"}
EOF
BACKUPD_TEST_DAEMON=$tmp/config.json "$tmp/daemon.test" 2>"$tmp/daemon.log" &
pid=$!
pids+=("$pid")
for _ in $(seq 100); do [ -S "$tmp/state/backupd.sock" ] && break; sleep 0.1; done
[ -S "$tmp/state/backupd.sock" ] || { echo "idle-cpu: the daemon did not start:"; cat "$tmp/daemon.log"; exit 1; }
sleep "$warmup"

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
runms() { cat /proc/"$pid"/task/*/sched 2>/dev/null | awk '/se.sum_exec_runtime/ {s += $3} END {printf "%.6f", s}'; }
hz=$(getconf CLK_TCK)

t0=$(ticks); n0=$(runms)
sleep "$duration"
t1=$(ticks); n1=$(runms)
kill -0 "$pid" 2>/dev/null || { echo "idle-cpu: the daemon died:"; cat "$tmp/daemon.log"; exit 1; }

ms_stat=$(( (t1 - t0) * 1000 / hz ))
ms_sched=$(awk -v a="$n0" -v b="$n1" 'BEGIN {printf "%.2f", b - a}')
usbmuxd="usbmuxd up, no phone"
[ -n "${NO_USBMUXD:-}" ] && usbmuxd="no usbmuxd"
[ -n "${VERBOSE:-}" ] && echo "idle-cpu: ticks $t0 -> $t1, run time ${n0} -> ${n1} ms"
echo "idle-cpu: ${duration}s idle ($usbmuxd): utime+stime $((t1 - t0)) ticks = ${ms_stat} ms (1 tick = $((1000 / hz)) ms); scheduler run time ${ms_sched} ms"
