#!/usr/bin/env bash
# The torture suite (issue #8), what `make torture` runs:
#
#  1. every TestTorture* test at full size (BACKUPD_TORTURE=full) with the
#     race detector: cable pulls at every protocol step of a full and an
#     incremental backup, kill -9 at 20 seeded instants and inside the
#     commit, full and read-only disks, every hostile device mode, and the
#     other torture suites; each writes its tally to $TORTURE_REPORT;
#  2. every fuzz target for FUZZTIME (default 10m), one row each;
#  3. a summary table: suite | trials | failures | bytes outside roots |
#     the daemon's peak RSS and CPU time (where the suite measures them),
#     and a total row.
#
# It exits non-zero if a test or a fuzz target failed, or any byte was
# written outside a root. The race detector over the whole module
# (go test -race ./...) is make test's job and is not repeated here.
# BACKUPD_TORTURE_SEED=N repeats the kill -9 instants of an earlier run
# (each run prints its seed).
set -uo pipefail

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10m}
# The kill -9 suite pauses the daemon inside a commit with a failpoint,
# which only a build with the failpoint tag has.
TESTTAGS=${TESTTAGS:--tags failpoint}
cd "$(dirname "$0")/.."

report=$(mktemp)
trap 'rm -f "$report"' EXIT

status=0
echo "torture: TestTorture* at full size, with the race detector"
if ! BACKUPD_TORTURE=full TORTURE_REPORT="$report" $GO test -race -count=1 -timeout 3h $TESTTAGS -run '^TestTorture' ./...; then
	echo "torture: a torture test FAILED"
	status=1
fi
echo "torture: every fuzz target for $FUZZTIME"
if ! FUZZTIME=$FUZZTIME FUZZ_REPORT="$report" GO=$GO scripts/fuzz.sh; then
	status=1
fi

# The tallies are JSON lines written by encoding/json (or fuzz.sh), one
# object a line with the keys in a fixed order; awk reads them.
echo
awk '
function field(line, key,    m) {
	if (match(line, "\"" key "\":(\"[^\"]*\"|-?[0-9]+)")) {
		m = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
		gsub(/"/, "", m)
		return m
	}
	return ""
}
function mib(b) { return b == "" ? "-" : sprintf("%d", b / 1048576) }
function secs(ms) { return ms == "" ? "-" : sprintf("%.1f", ms / 1000) }
BEGIN { printf "%-44s %12s %9s %15s %10s %8s\n", "suite", "trials", "failures", "bytes outside", "RSS MiB", "CPU s" }
{
	s = field($0, "suite"); n = field($0, "trials") + 0; f = field($0, "failures") + 0; o = field($0, "outside_bytes") + 0
	printf "%-44s %12d %9d %15d %10s %8s\n", s, n, f, o, mib(field($0, "peak_rss_bytes")), secs(field($0, "cpu_ms"))
	N += n; F += f; O += o; rows++
	if ((note = field($0, "note")) != "") notes = notes sprintf("  %s: %s\n", s, note)
}
END {
	printf "%-44s %12d %9d %15d %10s %8s\n", "total", N, F, O, "", ""
	if (notes != "") printf "\nnotes:\n%s", notes
	if (rows == 0) { print "torture: no tallies were recorded"; exit 1 }
	if (F > 0 || O > 0) exit 1
}' "$report" || status=1

if [ "$status" -ne 0 ]; then
	echo "torture: FAILED"
else
	echo "torture: passed"
fi
exit "$status"
