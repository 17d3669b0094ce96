#!/usr/bin/env bash
# Runs each Fuzz target of the module alone (go test -fuzz takes one at a
# time) for FUZZTIME, all of them even when one fails, then fails if any
# did. A crash is saved under the package's testdata/fuzz/ by go test,
# where it becomes a seed.
#
# A run that ends with go's bare "context deadline exceeded" and writes no
# failing input is not a finding: it is a race in Go 1.26's fuzzing
# coordinator at the -fuzztime boundary (golang/go#75804, fixed in Go
# 1.27), most likely on a loaded machine. Such a target is run once more
# over its corpus (go test -run replays testdata/fuzz); if that passes it
# counts as passed, with a note. A written failing input, or any other
# failure, fails.
#
# With FUZZ_REPORT set, each target appends one line to that file in the
# torture suite's tally format (JSON): trials = the executions go test
# reported, failures = 1 if the target failed.
set -euo pipefail

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
module=$($GO list -m)

failed=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $($GO list ./...); do
	list=$($GO test -list '^Fuzz' "$pkg")
	for f in $(grep '^Fuzz' <<<"$list" || true); do
		echo "fuzz: $pkg $f for $FUZZTIME"
		rc=0
		note=""
		$GO test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$log" || rc=$?
		if [ "$rc" -ne 0 ] && grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written to' "$log"; then
			echo "fuzz: $f ended on go's fuzztime deadline race with no failing input; replaying its corpus"
			if $GO test -count=1 -run "^$f\$" "$pkg"; then
				rc=0
				note="ended on go's -fuzztime deadline race (golang/go#75804), no failing input; corpus replay passed"
			fi
		fi
		if [ "$rc" -ne 0 ]; then
			failed+=("$pkg $f")
		fi
		if [ -n "${FUZZ_REPORT:-}" ]; then
			# go test -fuzz prints "fuzz: elapsed: 3s, execs: 12345 (...)".
			execs=$(grep -o 'execs: [0-9]*' "$log" | tail -n 1 | awk '{print $2}')
			printf '{"suite":"fuzz %s %s","trials":%d,"failures":%d,"outside_bytes":0,"note":"%s"}\n' \
				"${pkg#"$module"/}" "$f" "${execs:-0}" "$((rc != 0))" "$note" >>"$FUZZ_REPORT"
		fi
	done
done
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: FAILED: %s\n' "${failed[@]}"
	exit 1
fi
