package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/sim"
)

// hostileRSSBound bounds the daemon's peak resident memory through every
// hostile mode. backupd peaks at about 30 MiB in a normal backup (README's
// figures): it streams files in blocks of at most 1 MiB. A daemon that
// buffered a 4 GiB frame, or the endless file up to its bound
// (backup.max_file_size, 16 MiB here), would pass it.
const hostileRSSBound = 96 << 20

// peakRSS reads VmHWM, the peak resident set, of a process.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the daemon's memory: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// TestTortureHostile runs every hostile mode of the simulator against the
// daemon: paths with "../" and absolute paths, a symlink escape, a name
// over 4096 bytes, a 4 GiB frame, truncated and malformed plists, a file
// that never ends, and escapes through CreateDirectory, MoveItems and
// RemoveItems. Each run is refused as protocol_error; nothing is written
// outside the staging root; the daemon lives on without a panic, its peak
// memory under hostileRSSBound; the last good backup is byte-identical, no
// staging is left, and the next backup succeeds.
func TestTortureHostile(t *testing.T) {
	modes := sim.HostileModes()
	if !tortureFull() {
		modes = []string{"dotdot", "symlink", "huge-frame", "endless-file"}
	}
	// A short stall timeout: the truncated message never completes, and
	// the daemon waits that long for it. Not shorter: on a loaded machine
	// (the race detector, other tests) setting a backup up can take
	// seconds without progress, which would end it as stalled.
	// The endless file is refused at backup.max_file_size: what a phone
	// announces bounds nothing (real iPhones send more).
	r := newRig(t, rigOptions{stall: 5 * time.Second, extra: "max_file_size = \"16MiB\"\n"})
	d := r.startDaemon(t)
	r.settled(t)
	good := r.mustBackup(t, false)
	tally := tortureTally{Suite: "hostile device"}
	var peak int64
	for _, mode := range modes {
		tally.Trials++
		ok := t.Run(mode, func(t *testing.T) {
			os.Remove(hostileAbsolute)
			before := r.snapshot(t)
			r.ctl(t, "fault", r.udid, "hostile="+mode)
			var planted chan error
			if mode == "symlink" {
				// The device writes through <UDID>/Snapshot/link, a
				// symbolic link no host makes over this protocol: plant it
				// in the staging once the daemon has cloned the latest
				// backup, while the device holds its first message back.
				r.ctl(t, "fault", r.udid, "first-message-delay=1s")
				planted = make(chan error, 1)
				marks := strings.Count(d.out.String(), stagingReady)
				go func() { planted <- plantLink(r, d, marks, r.sentinel) }()
			}
			began := time.Now()
			code, run, out := r.backup(t, true)
			if planted != nil {
				if err := <-planted; err != nil {
					t.Fatalf("planting the symlink: %v", err)
				}
			}
			if code != exitFailed || run.Outcome != api.OutcomeFailed || run.Cause != cause.ProtocolError {
				t.Errorf("hostile backup: exit %d (want %d), run %s/%s, want failed/protocol_error\n%s", code, exitFailed, run.Outcome, run.Cause, out)
			}
			t.Logf("refused in %v: %s", time.Since(began).Round(time.Millisecond), run.Note)
			select {
			case <-d.exited:
				t.Fatalf("the daemon died: %v", d.err)
			default:
			}
			if strings.Contains(d.out.String(), "panic") {
				t.Error("the daemon's log mentions a panic")
			}
			rss := peakRSS(t, d.cmd.Process.Pid)
			peak = max(peak, rss)
			if rss > hostileRSSBound {
				t.Errorf("the daemon's peak RSS is %d MiB, over the %d MiB bound", rss>>20, hostileRSSBound>>20)
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
	t.Logf("the daemon's peak RSS over every mode: %d MiB", peak>>20)
	tally.Note = fmt.Sprintf("daemon peak RSS %d MiB", peak>>20)
	recordTorture(t, tally)
}

// stagingReady is what the daemon logs once a staging area is cloned.
const stagingReady = `"message":"staging ready"`

// plantLink waits for the daemon's log to say a new staging is ready (the
// log said it marks times before) and makes <UDID>/Snapshot/link in it,
// pointing at target.
func plantLink(r *rig, d *proc, marks int, target string) error {
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(d.out.String(), stagingReady) == marks {
		if time.Now().After(deadline) {
			return fmt.Errorf("no staging within 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	snap := filepath.Join(r.backups, ".backupd", "staging", r.udid, "root", r.udid, "Snapshot")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		return err
	}
	return os.Symlink(target, filepath.Join(snap, "link"))
}
