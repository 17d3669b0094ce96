package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
)

// Load and soak (issue #8): several phones backing up at once, and one
// phone backed up many times in a row while the daemon's memory, open
// files and goroutines are watched, with version retention checked on the
// way.

// setConfig adds lines under a table of env's configuration file
// ("" for the top level, before the first table).
func (e env) setConfig(t *testing.T, table, lines string) {
	t.Helper()
	b, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if table == "" {
		s = lines + "\n" + s
	} else if head := "[" + table + "]\n"; strings.Contains(s, head) {
		s = strings.Replace(s, head, head+lines+"\n", 1)
	} else {
		s += head + lines + "\n"
	}
	writeFile(t, e.config, s)
}

// api returns a client of the daemon env's configuration names.
func (e env) api(t *testing.T) *client.Client {
	t.Helper()
	c := client.New(filepath.Join(e.stateDir(), api.SocketName))
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// verifyBackups checks the latest backup of udid and every kept version
// with repo.Verify and returns how many versions there are.
func verifyBackups(t *testing.T, backupDir, udid string) int {
	t.Helper()
	r, err := repo.Open(backupDir, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := ctxFor(t, time.Minute)
	if rep, err := r.Verify(ctx, filepath.Join(backupDir, udid)); err != nil {
		t.Errorf("latest backup of %s: %v", udid, err)
	} else if rep.FilesListed == 0 || rep.FilesPresent != rep.FilesListed {
		t.Errorf("latest backup of %s: %s", udid, rep)
	}
	vs, err := r.Versions(udid)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if rep, err := r.Verify(ctx, v.Path); err != nil {
			t.Errorf("version %s of %s: %v", v.Name, udid, err)
		} else if rep.FilesPresent != rep.FilesListed {
			t.Errorf("version %s of %s: %s", v.Name, udid, rep)
		}
	}
	return len(vs)
}

// watchOutside snapshots env's directory (with a sentinel directory next
// to backup_dir) for the "bytes outside a root" count: a backup may
// write only to the staging area, the phones' latest backups and their
// versions, and the daemon to its history and socket.
func (e env) watchOutside(t *testing.T, udids []string) func() int64 {
	t.Helper()
	sentinel := filepath.Join(e.dir, "sentinel")
	if err := os.MkdirAll(sentinel, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sentinel, "keep"), "untouched")
	allowed := func(rel string) bool {
		under := func(dir string) bool { return rel == dir || strings.HasPrefix(rel, dir+"/") }
		for _, u := range udids {
			if under("backups/"+u) || under("backups/.backupd/versions/"+u) {
				return true
			}
		}
		return under("backups/.backupd/staging") || rel == "state/history.db" || rel == "state/"+api.SocketName
	}
	before := snapshotTree(t, e.dir, allowed)
	return func() int64 {
		n, changed := outsideBytes(before, snapshotTree(t, e.dir, allowed))
		if n > 0 {
			t.Errorf("%d bytes written outside the backups' roots: %v", n, changed)
		} else if len(changed) > 0 {
			t.Logf("changed outside the roots, no bytes: %v", changed)
		}
		return n
	}
}

// historyOutcomes counts the runs the daemon's history holds by outcome.
func (e env) historyOutcomes(t *testing.T) map[string]int {
	t.Helper()
	out, errOut, code := cli(t, e.bin, "history", "--json", "--limit", "1000", "--config", e.config)
	var runs []api.Run
	if err := json.Unmarshal([]byte(out), &runs); err != nil || code != exitOK {
		t.Fatalf("history --json: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	n := map[string]int{}
	for _, r := range runs {
		n[r.Outcome]++
	}
	return n
}

// TestTortureLoad plugs four phones in at once with max_concurrent = 4:
// all four are backed up, at the same time, and each backup verifies.
func TestTortureLoad(t *testing.T) {
	const devices = 4
	e := newEnv(t, devices)
	e.setConfig(t, "policy", "max_concurrent = 4")
	c := e.api(t)
	var udids []string
	for line := range strings.Lines(e.ctl(t, "list")) {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(line, "plugged=") {
			udids = append(udids, f[0])
		}
	}
	if len(udids) != devices {
		t.Fatalf("iphonesim lists %d phones, want %d", len(udids), devices)
	}
	outside := e.watchOutside(t, udids)
	began := time.Now()
	start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)

	// The daemon takes the four plug-ins at its start; the most backups
	// seen running at once shows they overlapped.
	peak := 0
	var devs []api.Device
	waitFor(t, "four plug-in backups", func() bool {
		if h, err := c.Health(ctxFor(t, 5*time.Second)); err == nil {
			peak = max(peak, h.BackupsRunning)
		}
		var err error
		devs, err = c.Devices(ctxFor(t, 5*time.Second))
		if err != nil || len(devs) != devices {
			return false
		}
		for _, d := range devs {
			if d.LastAttempt == nil || d.LastAttempt.Outcome == api.OutcomeRunning || d.State == api.StateBackingUp {
				return false
			}
		}
		return true
	})
	wall := time.Since(began)
	failures := 0
	for _, d := range devs {
		if d.LastAttempt.Outcome != api.OutcomeSuccess {
			failures++
			t.Errorf("%s: last attempt %+v", d.UDID, *d.LastAttempt)
		}
		verifyBackups(t, e.backupDir(), d.UDID)
	}
	if got := e.historyOutcomes(t); got[api.OutcomeSuccess] != devices || len(got) != 1 {
		t.Errorf("history holds %v, want %d successes and nothing else", got, devices)
	}
	if peak < 2 {
		// Sampled, so a miss is possible in principle, but four backups of
		// a hundred files each take far longer than a poll.
		t.Errorf("at most %d backup(s) seen running at once, want them to overlap (max_concurrent = 4)", peak)
	}
	recordTorture(t, tortureTally{Suite: "load", Trials: devices, Failures: failures, OutsideBytes: outside(),
		Note: fmt.Sprintf("4 phones at once: wall %v from daemon start, peak %d concurrent", wall.Round(time.Millisecond), peak)})
}

// sample is the daemon's footprint between two backups.
type sample struct {
	after      int // backups done
	rssKB      int
	fds        int
	goroutines int
}

func (s sample) String() string {
	return fmt.Sprintf("%4d backups  rss %6d KiB  fds %3d  goroutines %3d", s.after, s.rssKB, s.fds, s.goroutines)
}

// footprint samples the daemon's RSS and open files from /proc and its
// goroutines from /v1/health. Each count is the least of a few readings
// a moment apart: the request reading the health is itself a goroutine
// and a file, and the last backup's connections take a moment to close,
// while a leak stays.
func footprint(t *testing.T, c *client.Client, pid, after int) sample {
	t.Helper()
	s := sample{after: after, rssKB: -1, fds: -1, goroutines: -1}
	low := func(cur, v int) int {
		if cur < 0 || v < cur {
			return v
		}
		return cur
	}
	for range 3 {
		h, err := c.Health(ctxFor(t, 5*time.Second))
		if err != nil {
			t.Fatalf("health: %v", err)
		}
		s.goroutines = low(s.goroutines, h.Goroutines)
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		s.fds = low(s.fds, len(fds))
		s.rssKB = low(s.rssKB, vmRSS(t, pid))
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// TestTortureSoak backs one phone up many times in a row (50 in the full
// suite, 5 in the quick one) with 1% of its files changed before each,
// through `backupd backup --wait`. The daemon's RSS, open files and
// goroutines must not grow, and retention keeps exactly keep_versions
// older backups, each of which verifies.
func TestTortureSoak(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc: cannot sample the daemon")
	}
	backups, every := 5, 1
	if tortureFull() {
		backups, every = 50, 10
	}
	const keep = 3
	e := newEnv(t, 1)
	e.setConfig(t, "policy", `min_interval = "0s"`)
	e.setConfig(t, "backup", fmt.Sprintf("keep_versions = %d", keep))
	c := e.api(t)
	daemon := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	pid := daemon.cmd.Process.Pid

	var udid string
	waitFor(t, "the plug-in backup", func() bool {
		devs, err := c.Devices(ctxFor(t, 5*time.Second))
		if err != nil || len(devs) != 1 || devs[0].LastAttempt == nil || devs[0].LastAttempt.Outcome == api.OutcomeRunning {
			return false
		}
		udid = devs[0].UDID
		return true
	})
	failures := 0
	retentionFailures := 0
	done := 1 // the plug-in backup
	samples := []sample{footprint(t, c, pid, done)}
	outside := e.watchOutside(t, []string{udid})
	began := time.Now()
	for i := range backups {
		var changed int
		if out := e.ctl(t, "mutate", udid, "0.01"); !strings.HasSuffix(out, " files changed\n") {
			t.Fatalf("mutate: %q", out)
		} else if _, err := fmt.Sscanf(out, "%d files changed", &changed); err != nil || changed < 1 {
			t.Fatalf("mutate changed no file: %q", out)
		}
		out, errOut, code := cli(t, e.bin, "backup", udid, "--wait", "--config", e.config)
		done++
		if code != exitOK || !strings.Contains(out, "backup done") {
			failures++
			t.Errorf("backup %d: exit %d\n%s\n%s", i+1, code, out, errOut)
		}
		// Retention: the latest plus at most keep older ones.
		vs, err := os.ReadDir(filepath.Join(e.backupDir(), ".backupd", "versions", udid))
		if err != nil {
			t.Fatal(err)
		}
		if want := min(done-1, keep); len(vs) != want {
			retentionFailures++
			t.Errorf("after %d backups, %d versions kept, want %d", done, len(vs), want)
		}
		if (i+1)%every == 0 {
			samples = append(samples, footprint(t, c, pid, done))
		}
	}
	took := time.Since(began)
	if n := verifyBackups(t, e.backupDir(), udid); n != keep {
		retentionFailures++
		t.Errorf("%d versions at the end, want keep_versions = %d", n, keep)
	}
	if got := e.historyOutcomes(t); got[api.OutcomeSuccess] != done || len(got) != 1 {
		t.Errorf("history holds %v, want %d successes and nothing else", got, done)
	}

	var table, compact strings.Builder
	for _, s := range samples {
		table.WriteString(s.String() + "\n")
		fmt.Fprintf(&compact, " %d:%d/%d/%d", s.after, s.rssKB, s.fds, s.goroutines)
	}
	t.Logf("footprint between backups:\n%s", table.String())
	// Compare the last sample with the first after warm-up (the first
	// backups through --wait load code and grow pools once). fds and
	// goroutines must come back to where they were, give or take 2 (an
	// idle keep-alive connection of the API, a timer); RSS may move
	// with the garbage collector's pacing but a leak of the backups'
	// data (megabytes each) would exceed 20%.
	first, last := samples[1], samples[len(samples)-1]
	grew := 0
	if last.fds > first.fds+2 {
		grew++
		t.Errorf("open files grew from %d to %d over %d backups", first.fds, last.fds, last.after-first.after)
	}
	if last.goroutines > first.goroutines+2 {
		grew++
		t.Errorf("goroutines grew from %d to %d over %d backups", first.goroutines, last.goroutines, last.after-first.after)
	}
	if float64(last.rssKB) > 1.2*float64(first.rssKB) {
		grew++
		t.Errorf("RSS grew from %d to %d KiB over %d backups", first.rssKB, last.rssKB, last.after-first.after)
	}
	recordTorture(t, tortureTally{Suite: "soak", Trials: backups, Failures: failures + grew, OutsideBytes: outside(),
		Note: fmt.Sprintf("%d backups with 1%% mutation in %v (%v each); rss %d→%d KiB, fds %d→%d, goroutines %d→%d; samples (backups:rss KiB/fds/goroutines)%s",
			backups, took.Round(time.Millisecond), (took / time.Duration(backups)).Round(time.Millisecond),
			first.rssKB, last.rssKB, first.fds, last.fds, first.goroutines, last.goroutines, compact.String())})
	recordTorture(t, tortureTally{Suite: "retention", Trials: backups, Failures: retentionFailures,
		Note: fmt.Sprintf("keep_versions = %d over %d backups; every version verifies", keep, done)})
}
