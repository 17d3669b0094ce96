//go:build failpoint

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/store"
)

// killTrial is one kill -9: after a delay from the start of a full
// backup, or when the daemon reaches a commit step (the failpoint
// BACKUPD_TEST_PAUSE holds it there).
type killTrial struct {
	after time.Duration
	step  string
}

func (k killTrial) String() string {
	if k.step != "" {
		return "in commit step " + k.step
	}
	return "after " + k.after.String()
}

// tortureSeed is BACKUPD_TORTURE_SEED, or one drawn now.
func tortureSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("BACKUPD_TORTURE_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("BACKUPD_TORTURE_SEED=%q: %v", s, err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// TestTortureKill kills the daemon with SIGKILL at random instants of a
// full backup (uniform over its measured duration, from a printed seed)
// and inside the commit: before and after the commit point, after the
// swap, and in retention. After each: the history passes `bbolt check`
// and store.Check (backupd's own invariants besides); the next start records the run interrupted (or the success
// it was, when the kill came after the commit point); the latest backup is
// either the last good one, byte-identical, or the new one, complete; no
// staging is left; nothing was written outside the roots; and the next
// backup succeeds.
func TestTortureKill(t *testing.T) {
	seed := tortureSeed(t)
	t.Logf("seed %d (BACKUPD_TORTURE_SEED=%d repeats this run)", seed, seed)
	// keep_versions = 1: from the third backup on, each commit prunes a
	// version, so retention has a step to kill in.
	r := newRig(t, rigOptions{files: 200, keepVersions: 1})
	// The link is capped so that a backup lasts long enough to aim at.
	slow := "slow-link=4000000"

	r.startDaemon(t)
	r.settled(t)
	good := r.mustBackup(t, false)
	// The measured duration of a full backup.
	r.ctl(t, "fault", r.udid, slow)
	began := time.Now()
	good = r.mustBackup(t, true)
	took := time.Since(began)
	t.Logf("a full backup takes %v", took.Round(time.Millisecond))

	rng := rand.New(rand.NewPCG(seed, 0x70727475))
	random, pinned := 20, []string{"synced", "journaled", "swapped", "pruned"}
	if !tortureFull() {
		random, pinned = 1, []string{"swapped"}
	}
	var trials []killTrial
	for range random {
		trials = append(trials, killTrial{after: time.Duration(rng.Int64N(int64(took)))})
	}
	for _, s := range pinned {
		trials = append(trials, killTrial{step: s})
	}

	tally := tortureTally{Suite: "kill -9", Note: fmt.Sprintf("seed %d", seed)}
	var outcomes []string
	for i, tr := range trials {
		tally.Trials++
		ok := t.Run(fmt.Sprintf("%02d_%s", i, strings.ReplaceAll(tr.String(), " ", "_")), func(t *testing.T) {
			before := r.snapshot(t)
			if tr.step != "" {
				// The failpoint needs a daemon started with it.
				r.daemon.stop(t)
				r.startDaemon(t, testPauseEnv+"=commit:"+tr.step+":60s")
				r.settled(t)
			}
			if tr.step == "" {
				r.ctl(t, "fault", r.udid, slow)
			}
			prev := r.lastRun(t)
			_, errOut, code := cli(t, r.bin, "backup", r.udid, "--full", "--config", r.config)
			if code != exitOK {
				t.Fatalf("backup --full: exit %d: %s", code, errOut)
			}
			if tr.step != "" {
				waitFor(t, "the pause in commit step "+tr.step, func() bool {
					return strings.Contains(r.daemon.out.String(), `"message":"test pause"`)
				})
			} else {
				time.Sleep(tr.after)
			}
			r.kill9(t)
			// The run the kill cut short, as the dead daemon left it; an
			// early kill can come before the daemon recorded any.
			killed := r.lastRun(t)
			begun := killed.ID != prev.ID

			checkHistory(t, filepath.Join(r.state, "history.db"))

			r.ctl(t, "fault", r.udid, "clear")
			r.startDaemon(t)
			after := r.lastRun(t)
			if after.ID != killed.ID {
				t.Fatalf("newest run after the restart is %d, want the killed one %d", after.ID, killed.ID)
			}
			latest := r.latestHash(t)
			switch {
			case !begun:
				if latest != good {
					t.Error("killed before the run began, but the last good backup changed")
				}
				after.Outcome = "not begun"
			case after.Outcome == api.OutcomeInterrupted && after.Cause == cause.Interrupted:
				if latest != good {
					t.Error("the run was interrupted, but the last good backup changed")
				}
			case after.Outcome == api.OutcomeSuccess:
				// Killed after the commit point (recovery finished it), or
				// after the run ended: the latest is the new backup.
				verifyLatest(t, r)
			default:
				t.Errorf("run after the restart: %s/%s, want interrupted/interrupted or success", after.Outcome, after.Cause)
			}
			if tr.step != "" && !begun {
				t.Errorf("the daemon paused in commit step %s, but no run was recorded", tr.step)
			}
			if tr.step != "" && tr.step != "synced" && after.Outcome != api.OutcomeSuccess {
				t.Errorf("a kill past the commit point (%s) was not completed: %s", tr.step, after.Outcome)
			}
			if tr.step == "synced" && after.Outcome != api.OutcomeInterrupted {
				t.Errorf("a kill before the commit point was recorded %s, want interrupted", after.Outcome)
			}
			outcomes = append(outcomes, fmt.Sprintf("%s→%s", tr, after.Outcome))
			if left := r.stagingLeft(t); len(left) > 0 {
				t.Errorf("staging left after the restart: %v", left)
			}
			if vs, err := os.ReadDir(filepath.Join(r.backups, ".backupd", "versions", r.udid)); err != nil || len(vs) > 1 {
				t.Errorf("versions after the restart: %v (%v), want at most keep_versions = 1", vs, err)
			}
			tally.OutsideBytes += r.outside(t, before)

			r.settled(t)
			good = r.mustBackup(t, false)
		})
		if !ok {
			tally.Failures++
		}
	}
	t.Logf("outcomes: %s", strings.Join(outcomes, ", "))
	recordTorture(t, tally)
}

// checkHistory checks the history of a daemon that is not running: with
// bbolt's own command, `bbolt check` (make installs it in bin/tools and
// puts it on the tests' PATH; under CI=true it must be there), and with
// store.Check, which adds backupd's invariants to bbolt's page check.
func checkHistory(t *testing.T, path string) {
	t.Helper()
	if bbolt, err := exec.LookPath("bbolt"); err == nil {
		out, err := exec.Command(bbolt, "check", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Errorf("bbolt check after kill -9: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Fatal("bbolt is not installed; CI needs it (make test installs it in bin/tools)")
	} else {
		t.Log("bbolt is not installed (make test installs it): only store.Check runs")
	}
	st, err := store.Open(path, store.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open the history after kill -9: %v", err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Errorf("history check after kill -9: %v", err)
	}
}

// verifyLatest checks the latest backup as a commit does: Status.plist
// finished, the plists parse, Manifest.db lists only files that are there.
func verifyLatest(t *testing.T, r *rig) {
	t.Helper()
	rp, err := repo.Open(r.backups, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	if _, err := rp.Verify(context.Background(), filepath.Join(r.backups, r.udid)); err != nil {
		t.Errorf("the latest backup does not verify: %v", err)
	}
}

// kill9 kills the daemon with SIGKILL and waits for it.
func (r *rig) kill9(t *testing.T) {
	t.Helper()
	if err := r.daemon.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-r.daemon.exited
}
