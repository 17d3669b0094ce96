package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/sim"
)

// pullTrial is one cable pull: a full or an incremental backup, and where
// the cable goes (a protocol step, or a byte count inside a file).
type pullTrial struct {
	full       bool
	step       string // "" for a pull mid-file
	afterBytes int64
}

func (p pullTrial) String() string {
	kind := "incremental"
	if p.full {
		kind = "full"
	}
	if p.step == "" {
		return fmt.Sprintf("%s/mid-file after %d bytes", kind, p.afterBytes)
	}
	return kind + "/" + p.step
}

func pullTrials() []pullTrial {
	if !tortureFull() {
		return []pullTrial{{full: true, step: "upload"}, {step: "download-manifest"}, {afterBytes: 1000}}
	}
	var ts []pullTrial
	for _, full := range []bool{true, false} {
		for _, step := range sim.BackupSteps() {
			// A full backup has no manifest to download.
			if full && step == "download-manifest" {
				continue
			}
			ts = append(ts, pullTrial{full: full, step: step})
		}
	}
	// The first file is at least 1 KiB: 1000 bytes is inside it; 200 000
	// is inside a later one of a full backup.
	return append(ts, pullTrial{afterBytes: 1000}, pullTrial{full: true, afterBytes: 1000}, pullTrial{full: true, afterBytes: 200000})
}

// TestTorturePull pulls the cable at each protocol step of a full and of
// an incremental backup, and inside a file, through the daemon. After each
// pull: `backupd backup --wait` exits 4, the run is recorded failed
// (disconnected), the last good backup is byte-identical, no staging is
// left, nothing was written outside the backup's roots, and the next
// backup succeeds.
func TestTorturePull(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.startDaemon(t)
	r.settled(t)
	good := r.mustBackup(t, false)
	tally := tortureTally{Suite: "cable pulls"}
	for _, tr := range pullTrials() {
		tally.Trials++
		ok := t.Run(strings.ReplaceAll(tr.String(), " ", "_"), func(t *testing.T) {
			before := r.snapshot(t)
			if !tr.full {
				// Something for the incremental backup to send.
				r.ctl(t, "mutate", r.udid, "0.01")
			}
			if tr.step != "" {
				r.ctl(t, "fault", r.udid, "unplug-at-step="+tr.step)
			} else {
				r.ctl(t, "fault", r.udid, fmt.Sprintf("unplug-after-bytes=%d", tr.afterBytes))
			}
			code, run, out := r.backup(t, tr.full)
			if code != exitFailed || run.Outcome != api.OutcomeFailed || run.Cause != cause.Disconnected {
				t.Errorf("backup with the cable pulled: exit %d (want %d), run %s/%s (want failed/disconnected)\n%s", code, exitFailed, run.Outcome, run.Cause, out)
			}
			if list := r.ctl(t, "list"); !strings.Contains(list, "plugged=false") {
				t.Errorf("the pull never happened: %s", list)
			}
			if got := r.latestHash(t); got != good {
				t.Error("the last good backup changed")
			}
			if left := r.stagingLeft(t); len(left) > 0 {
				t.Errorf("staging left: %v", left)
			}
			tally.OutsideBytes += r.outside(t, before)

			r.replug(t)
			good = r.mustBackup(t, false)
		})
		if !ok {
			tally.Failures++
		}
	}
	recordTorture(t, tally)
}
