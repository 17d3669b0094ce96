#!/usr/bin/env bash
# profile-run.sh: one `backupd run` end to end against the simulator, with
# where its memory and time went: the quickest loop for profiling the
# product rather than the engine.
#
# It starts iphonesim with FILES files of MIN–MAX bytes (the simulated
# link unthrottled), then `backupd run` with a settle time of 10 ms; when
# the backup ends it stops the daemon with SIGTERM and prints:
#   - wall, user and sys seconds and the peak RSS of the process (GNU time);
#   - the peak of RSS, anonymous and file-backed memory sampled from
#     /proc/PID/smaps_rollup every 20 ms (NAME/rss.txt in the output
#     directory has every sample: ms, rss, anon, file in KiB);
#   - the daemon's "backup phase" lines (each phase's time).
#
#   scripts/profile-run.sh [FILES [MIN MAX]]   default: 20000 1024 65536 (W1)
#   INCREMENTAL=0.01 scripts/profile-run.sh    after the full backup, 1% of
#                                              the files changed and a second,
#                                              incremental one, by a new daemon
#   PRE='perf record -g -o /tmp/perf.data' scripts/profile-run.sh
#                                              run the daemon under a tool
#   KEEP=1 scripts/profile-run.sh              keep the output directory
#   SMAPS=1 scripts/profile-run.sh             also the mappings at the peak
#
# Needs go and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-20000} min=${2:-1024} max=${3:-65536}
command -v /usr/bin/time >/dev/null || { echo "profile-run: GNU time is missing (apt-get install time)" >&2; exit 1; }

work=$(mktemp -d /tmp/bdprof.XXXXXX)
sim_pid=""
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
# backupd built as the Debian package and the release archives build it,
# but with its symbol table when a tool such as perf needs it (the table
# is not loaded: the memory figures are the same).
strip="-s -w"
[ -z "${PRE:-}" ] || strip=""
CGO_ENABLED=0 go build -trimpath -ldflags "$strip" -o "$work/bin/" ./cmd/backupd
go build -o "$work/bin/" ./cmd/iphonesim

sock=$work/mux.sock
"$work/bin/iphonesim" --socket "$sock" --files "$files" --min-size "$min" --max-size "$max" --speed 100000000000 >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 300); do [ -S "$sock.ctl" ] && break; sleep 0.1; done
udid=$("$work/bin/iphonesim" ctl --control "$sock.ctl" list | awk 'NR==1{print $1}')

# The daemon's directories, the same for each run: the incremental run
# backs up onto the full one.
dir=$work/daemon
mkdir -p "$dir/b"
cat >"$dir/c.toml" <<CONF
state_dir = "$dir/s"
backup_dir = "$dir/b"
usbmuxd = "UNIX:$sock"
log_level = "debug"
[policy]
free_space_margin = 0
min_interval = "0"
retry_limit = 0
[stability]
settle = "10ms"
CONF

# run_daemon NAME: one `backupd run` until its backup ends; prints figures
# and leaves its log, time and samples in $work/NAME.
run_daemon() {
	local name=$1 out=$work/$1
	mkdir -p "$out"
	sync
	# shellcheck disable=SC2086
	/usr/bin/time -f '%e %U %S %M' -o "$out/time.txt" ${PRE:-} "$work/bin/backupd" run --config "$dir/c.toml" --log-format json >"$out/log.json" 2>&1 &
	local tpid=$! pid="" peak=0
	for _ in $(seq 200); do pid=$(pgrep -n -f "^$work/bin/backupd run --config $dir/c.toml" || true); [ -n "$pid" ] && break; sleep 0.01; done
	local t0
	t0=$(date +%s%3N)
	: >"$out/rss.txt"
	while kill -0 "$tpid" 2>/dev/null; do
		awk -v t="$(($(date +%s%3N) - t0))" '/^Rss:/{r=$2} /^Anonymous:/{a=$2} END{if (r) print t, r, a, r-a}' "/proc/$pid/smaps_rollup" >>"$out/rss.txt" 2>/dev/null || true
		if [ -n "${SMAPS:-}" ]; then
			# The whole smaps at the highest RSS so far: which mappings.
			local r
			r=$(tail -1 "$out/rss.txt" | awk '{print $2}')
			if [ -n "$r" ] && [ "$r" -gt "${peak:-0}" ]; then peak=$r; cp "/proc/$pid/smaps" "$out/smaps-peak.txt" 2>/dev/null || true; fi
		fi
		if grep -q '"message":"backup ended"' "$out/log.json"; then kill -TERM "$pid" 2>/dev/null || true; fi
		sleep 0.02
	done
	wait "$tpid" || true
	grep -q '"outcome":"success"' "$out/log.json" || { echo "profile-run: the backup failed:" >&2; tail -20 "$out/log.json" >&2; exit 1; }
	read -r wall user sys maxrss < <(tail -1 "$out/time.txt")
	echo "$name: wall ${wall}s user ${user}s sys ${sys}s peak RSS $((maxrss / 1024)) MiB"
	sort -k2 -n "$out/rss.txt" | tail -1 | awk '{printf "  sampled peak at %d ms: RSS %.1f MiB = anon %.1f + file %.1f\n", $1, $2/1024, $3/1024, $4/1024}'
	sort -k3 -n "$out/rss.txt" | tail -1 | awk '{printf "  anon peak at %d ms: %.1f MiB\n", $1, $3/1024}'
	grep '"backup phase"' "$out/log.json" | sed -E 's/.*"phase":"([^"]*)".*"took_ms":([0-9.]*).*/  \1 \2 ms/' || true
	[ -z "${SMAPS:-}" ] || awk '/^[0-9a-f]+-/{name=$6} /^Rss:/{rss[name]+=$2} END{for (n in rss) if (rss[n] >= 256) printf "  %8.1f MiB  %s\n", rss[n]/1024, (n == "" ? "[anon]" : n)}' "$out/smaps-peak.txt" | sort -rn
}

run_daemon full
if [ -n "${INCREMENTAL:-}" ]; then
	"$work/bin/iphonesim" ctl --control "$sock.ctl" mutate "$udid" "$INCREMENTAL" >/dev/null
	run_daemon incremental
fi
