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
#   ExtractW1, ExtractW2  every file of the full backup of W1 and W2
#       extracted by `backupd extract`, against `cp -r` of the same backup
#       (no Debian tool extracts a backup without the phone)
#
# For each it prints the wall time of both tools (process start to exit;
# backupd's includes staging, verify, fsync and the swap into place), their
# ratio (below 1: backupd is faster), the peak RSS of both and the rate at
# which the simulator alone can feed a host that discards everything.
# Rounds alternate which tool goes first and start with a sync, so neither
# pays for the other's dirty pages. A workload of many files keeps its
# trees to its end and then waits 31 s, the kernel's window in which freed
# inodes are skipped (on ext4 without a journal), before the next one.
# The restore and extract rows have no sim feed figure.
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
rounds=${ROUNDS:-5}
bench=${BENCH:-W1|W2|W3|RestoreW1|RestoreW2|ExtractW1|ExtractW2}
out=$(mktemp)
bin=$(mktemp -d)
trap 'rm -rf "$out" "$bin"' EXIT

# backupd for the end-to-end and extract rows, built as the Debian
# package and the release archives build it: pure Go, statically linked
# (a cgo build maps libc as well, 1.3 MiB more of peak RSS).
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/backupd" ./cmd/backupd
BACKUPD_BENCH_COMPARE=1 BACKUPD_BENCH_DAEMON="$bin/backupd" go test ./backup/ -run '^$' -bench "^Benchmark($bench)\$" -benchtime "${rounds}x" -timeout 90m | tee "$out"

echo
echo "medians of $rounds rounds; engine: backupd's engine in a process of its own; daemon: backupd run end to end"
awk '
/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i += 2) v[name, $(i+1)] = $i
	names[++n] = name
}
function row(m, label, t, ratio) {
	if (v[m, t "-s"] == "") return
	printf "%-9s %-15s %8.2f %6s %8.2f %7.2f %9.2f %9.1f %8.1f\n", m, label, v[m, t "-s"], ratio, v[m, t "-user-s"], v[m, t "-sys-s"], v[m, t "-cpu-s/GiB"], v[m, t "-cpu-us/file"], v[m, t "-maxrss-MiB"]
}
END {
	printf "%-9s %-15s %8s %6s %8s %7s %9s %9s %8s\n", "", "tool", "wall s", "ratio", "user s", "sys s", "CPU s/GiB", "CPU us/f", "RSS MiB"
	for (i = 1; i <= n; i++) {
		m = names[i]
		row(m, "idevicebackup2", "idevicebackup2", "")
		row(m, "backupd engine", "backupd", sprintf("%.2f", v[m, "ratio"]))
		row(m, "backupd run", "daemon", sprintf("%.2f", v[m, "daemon-ratio"]))
		row(m, "cp -r", "cp", "")
		row(m, "backupd extract", "extract", sprintf("%.2f", v[m, "extract-ratio"]))
		if (v[m, "sim-discard-MiB/s"] != "") printf "%-9s %d files, %.0f MiB; the simulator feeds a host that discards at %.0f MiB/s\n", m, v[m, "files"], v[m, "MiB"], v[m, "sim-discard-MiB/s"]
	}
}' "$out"
