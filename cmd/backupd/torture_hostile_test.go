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

// appFloodRSSBound is hostileRSSBound for the app flood, the last mode:
// Info.plist filled to its budget (24 MiB of records) is built in memory
// and written as XML, which costs about 130 MiB of allocation; without
// the budget the daemon would hold 160 GB of icons.
const appFloodRSSBound = 192 << 20

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

// hostileWant is how a backup against a hostile mode ends: a Manifest.db
// no phone writes does not verify, an inode flood meets the files budget
// (backup.max_files), the app flood is backed up with an Info.plist cut
// to its budget, and every other attack breaks the protocol.
func hostileWant(mode string) (string, cause.Code) {
	switch mode {
	case "manifest-endless", "manifest-huge-blobs":
		return api.OutcomeFailed, cause.VerifyFailed
	case "inode-flood":
		return api.OutcomeFailed, cause.HostDiskFull
	case "app-flood":
		return api.OutcomeSuccess, cause.None
	}
	return api.OutcomeFailed, cause.ProtocolError
}

// hostileMaxFiles is backup.max_files in the hostile suite: the inode
// flood meets it after a few seconds rather than a million files.
const hostileMaxFiles = 20000

// TestTortureHostile runs every hostile mode of the simulator against the
// daemon: paths with "../" and absolute paths, a symlink escape, a name
// over 4096 bytes, a 4 GiB frame, truncated and malformed plists, a file
// that never ends, escapes through CreateDirectory, MoveItems and
// RemoveItems, a Manifest.db whose Files never ends or whose records are
// 256 MiB each, a flood of empty files, and 10,000 apps with 16 MiB
// icons. Each run ends as hostileWant says; nothing is written outside
// the staging root; the daemon lives on without a panic, its peak memory
// under hostileRSSBound; a refused backup leaves the last good one
// byte-identical, no staging is left, and the next backup succeeds. The
// table gets the daemon's peak RSS and CPU time; the notes, each trial's
// (the good backup after it included).
func TestTortureHostile(t *testing.T) {
	modes := sim.HostileModes()
	if !tortureFull() {
		modes = []string{"dotdot", "symlink", "huge-frame", "endless-file", "manifest-endless", "inode-flood"}
	}
	// A short stall timeout: the truncated message never completes, and
	// the daemon waits that long for it. Not shorter: on a loaded machine
	// (the race detector, other tests) setting a backup up can take
	// seconds without progress, which would end it as stalled.
	// The endless file is refused at backup.max_file_size: what a phone
	// announces bounds nothing (real iPhones send more).
	r := newRig(t, rigOptions{stall: 5 * time.Second, extra: fmt.Sprintf("max_file_size = \"16MiB\"\nmax_files = %d\n", hostileMaxFiles)})
	d := r.startDaemon(t)
	r.settled(t)
	good := r.mustBackup(t, false)
	tally := tortureTally{Suite: "hostile device"}
	var notes []string
	for _, mode := range modes {
		tally.Trials++
		ok := t.Run(mode, func(t *testing.T) {
			cpu := cpuTime(t, d.cmd.Process.Pid)
			began := time.Now()
			good = hostileTrial(t, r, d, mode, good, &tally)
			cpu = cpuTime(t, d.cmd.Process.Pid) - cpu
			notes = append(notes, fmt.Sprintf("%s %v (CPU %v, peak RSS %d MiB)", mode, time.Since(began).Round(10*time.Millisecond),
				cpu.Round(10*time.Millisecond), peakRSS(t, d.cmd.Process.Pid)>>20))
		})
		if !ok {
			tally.Failures++
		}
	}
	tally.PeakRSS = peakRSS(t, d.cmd.Process.Pid)
	tally.CPUMillis = cpuTime(t, d.cmd.Process.Pid).Milliseconds()
	t.Logf("the daemon's peak RSS over every mode: %d MiB, CPU %d ms", tally.PeakRSS>>20, tally.CPUMillis)
	tally.Note = strings.Join(notes, "; ")
	recordTorture(t, tally)
}

// hostileTrial runs one backup against mode and checks what it left;
// it returns the hash of the latest backup after the next good backup.
func hostileTrial(t *testing.T, r *rig, d *proc, mode, good string, tally *tortureTally) string {
	os.Remove(hostileAbsolute)
	before := r.snapshot(t)
	r.ctl(t, "fault", r.udid, "hostile="+mode)
	var planted chan error
	if mode == "symlink" {
		// The device writes through <UDID>/Snapshot/link, a symbolic link
		// no host makes over this protocol: plant it in the staging once
		// the daemon has cloned the latest backup, while the device holds
		// its first message back.
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
	wantOutcome, wantCause := hostileWant(mode)
	wantCode := exitFailed
	if wantOutcome == api.OutcomeSuccess {
		wantCode = exitOK
	}
	if code != wantCode || run.Outcome != wantOutcome || run.Cause != wantCause {
		t.Errorf("hostile backup: exit %d (want %d), run %s/%s, want %s/%s\n%s", code, wantCode, run.Outcome, run.Cause, wantOutcome, wantCause, out)
	}
	t.Logf("ended in %v: %s", time.Since(began).Round(time.Millisecond), run.Note)
	select {
	case <-d.exited:
		t.Fatalf("the daemon died: %v", d.err)
	default:
	}
	if strings.Contains(d.out.String(), "panic") {
		t.Error("the daemon's log mentions a panic")
	}
	bound := int64(hostileRSSBound)
	if mode == "app-flood" {
		bound = appFloodRSSBound
	}
	if rss := peakRSS(t, d.cmd.Process.Pid); rss > bound {
		t.Errorf("the daemon's peak RSS is %d MiB, over the %d MiB bound", rss>>20, bound>>20)
	}
	if wantOutcome != api.OutcomeSuccess && r.latestHash(t) != good {
		t.Error("the last good backup changed")
	}
	if left := r.stagingLeft(t); len(left) > 0 {
		t.Errorf("staging left: %v", left)
	}
	tally.OutsideBytes += r.outside(t, before)

	r.replug(t)
	return r.mustBackup(t, false)
}

// cpuTime reads the user and system CPU time a process has used, from
// /proc/PID/stat (in clock ticks of 1/100 s, USER_HZ on Linux).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read the daemon's CPU time: %v", err)
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis (state is field 3, utime 14).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
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
