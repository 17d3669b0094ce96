#!/usr/bin/env bash
# make bench-compare: backupd's engine against Debian's idevicebackup2 on
# the same simulated workloads, each in a child process, in one run:
#
#   W1  20 000 files of 1–64 KiB, full backup
#   W2  8 files of 256 MiB, full backup
#   W3  W1 after 1% of its files changed, incremental backup
#   RestoreW1, RestoreW2  the full backup of W1 and W2 restored: backupd's
#       engine (checks, verify, transfer) against "idevicebackup2 restore
#       --system --settings --no-reboot", the simulator checking every file
#
# For each it prints the wall time of both tools (process start to exit;
# backupd's includes staging, verify, fsync and the swap into place), their
# ratio (below 1: backupd is faster), the peak RSS of both and the rate at
# which the simulator alone can feed a host that discards everything.
# Rounds alternate which tool goes first and start with a sync, so neither
# pays for the other's dirty pages. The restore rows have no sim feed
# figure (shown as 0).
#
#   ROUNDS=4 scripts/bench-compare.sh        more rounds per workload
#   BENCH='W1|W3' scripts/bench-compare.sh   some workloads only
#   BENCH='RestoreW1|RestoreW2' scripts/bench-compare.sh   the restores only
#
# Needs idevicebackup2 (make deps) and a few GiB free in TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v idevicebackup2 >/dev/null 2>&1 || {
	echo "bench-compare: idevicebackup2 is missing; run 'make deps' as root or install libimobiledevice-utils" >&2
	exit 1
}
rounds=${ROUNDS:-2}
bench=${BENCH:-W1|W2|W3|RestoreW1|RestoreW2}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

BACKUPD_BENCH_COMPARE=1 go test ./backup/ -run '^$' -bench "^Benchmark($bench)\$" -benchtime "${rounds}x" -timeout 60m | tee "$out"

echo
awk '
/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i += 2) v[name, $(i+1)] = $i
	names[++n] = name
}
END {
	printf "%-9s %11s %15s %7s %15s %22s %16s\n", "", "backupd s", "idevicebackup2 s", "ratio", "backupd RSS MiB", "idevicebackup2 RSS MiB", "sim feed MiB/s"
	for (i = 1; i <= n; i++) {
		m = names[i]
		printf "%-9s %11.2f %15.2f %7.2f %15.1f %22.1f %16.0f\n", m, v[m, "backupd-s"], v[m, "idevicebackup2-s"], v[m, "ratio"], v[m, "backupd-maxrss-MiB"], v[m, "idevicebackup2-maxrss-MiB"], v[m, "sim-discard-MiB/s"]
	}
}' "$out"
