package main

import (
	"encoding/json"
	"os"
	"sync"
	"testing"
)

// The torture suite (make torture, issue #8) runs the TestTorture* tests
// with BACKUPD_TORTURE=full; make test runs their quick subset. Each suite
// reports its tally with recordTorture, and scripts/torture.sh prints the
// tallies of every suite as one table.

// tortureFull reports whether the full torture suite was asked for.
func tortureFull() bool { return os.Getenv("BACKUPD_TORTURE") == "full" }

// tortureTally is one line of the summary table.
type tortureTally struct {
	Suite    string `json:"suite"`
	Trials   int    `json:"trials"`
	Failures int    `json:"failures"`
	// OutsideBytes counts bytes found written outside the roots a backup
	// may write to (must be 0).
	OutsideBytes int64 `json:"outside_bytes"`
	// PeakRSS and CPUMillis are the daemon's peak resident memory and
	// CPU time through the suite, where it measures them.
	PeakRSS   int64  `json:"peak_rss_bytes,omitempty"`
	CPUMillis int64  `json:"cpu_ms,omitempty"`
	Note      string `json:"note,omitempty"`
}

var tortureMu sync.Mutex

// recordTorture appends tally to the file named by $TORTURE_REPORT, one
// JSON object a line; without it, it only logs.
func recordTorture(t *testing.T, tally tortureTally) {
	t.Helper()
	t.Logf("torture %s: %d trials, %d failures, %d bytes outside roots %s", tally.Suite, tally.Trials, tally.Failures, tally.OutsideBytes, tally.Note)
	path := os.Getenv("TORTURE_REPORT")
	if path == "" {
		return
	}
	line, err := json.Marshal(tally)
	if err != nil {
		t.Fatal(err)
	}
	tortureMu.Lock()
	defer tortureMu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatalf("torture report: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		t.Fatalf("torture report: %v", err)
	}
}
