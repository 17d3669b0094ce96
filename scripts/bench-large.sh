#!/usr/bin/env bash
# The large phone (issue #13, item 9): real phones reach a million files
# and a Manifest.db of 1.5 GB. A simulated phone of FILES files (default
# 1 000 000) of 1-16 bytes: a full backup, an incremental after 0.1% of
# the files changed, and a verify of the result, each by backupd's engine
# in a process of its own. Prints per phase the wall time, CPU (user +
# sys) and peak RSS, and each backup's "backup phase" lines (where its
# time went). Part of `make bench`; takes some minutes and a
# million inodes in TMPDIR.
#
#   FILES=200000 scripts/bench-large.sh     a smaller phone
set -euo pipefail
cd "$(dirname "$0")/.."
files=${FILES:-1000000}
BACKUPD_BENCH_LARGE=$files go test ./backup/ -run '^$' -bench '^BenchmarkLargePhone$' -benchtime 1x -timeout 60m
