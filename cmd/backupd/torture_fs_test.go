package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/daemon/api"
)

// What the torture suite's trials share: a walker that finds bytes written
// outside the places a backup may write to, and a rig of real binaries (a
// simulated iPhone and `backupd run`) in one directory that the walker
// watches.

// fileState is what the walker remembers of one entry.
type fileState struct {
	size  int64
	mtime time.Time
	mode  fs.FileMode
}

// treeSnapshot maps paths relative to the watched root to their state.
type treeSnapshot map[string]fileState

// snapshotTree records every entry under root (symbolic links are not
// followed) except those allowed(rel) accepts: the places a backup may
// write to, whose content other checks cover.
func snapshotTree(t *testing.T, root string, allowed func(rel string) bool) treeSnapshot {
	t.Helper()
	snap := treeSnapshot{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// An entry removed while we walk (a staging area going away)
			// is not ours to report.
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && allowed(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		snap[rel] = fileState{size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode()}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return snap
}

// outsideBytes compares two snapshots: the bytes of regular files that are
// new, grew (the growth) or were rewritten (same or smaller size, another
// modification time: their size), and the entries that appeared, changed
// or vanished, for the error message.
func outsideBytes(before, after treeSnapshot) (n int64, changed []string) {
	for p, a := range after {
		b, ok := before[p]
		switch {
		case !ok:
			changed = append(changed, "new "+p)
			if a.mode.IsRegular() {
				n += a.size
			}
		case a.mode.IsRegular() && a.size > b.size:
			changed = append(changed, "grown "+p)
			n += a.size - b.size
		case a.mode.IsRegular() && !a.mtime.Equal(b.mtime):
			changed = append(changed, "rewritten "+p)
			n += a.size
		case a.mode != b.mode:
			changed = append(changed, "mode changed "+p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			changed = append(changed, "removed "+p)
		}
	}
	slices.Sort(changed)
	return n, changed
}

// hostileAbsolute is where the "absolute" hostile mode aims.
const hostileAbsolute = "/tmp/backupd-hostile-absolute"

// rigOptions shape a torture rig.
type rigOptions struct {
	files   int   // files on the phone (default 100)
	maxSize int64 // largest file (default 128 KiB)
	// prepare, when set, makes backup_dir under the rig's directory (a
	// mount, say) and returns it; else it is dir/backups.
	prepare func(t *testing.T, dir string) string
	// extra is appended to the configuration file (TOML; keys of
	// [backup], since that table is last).
	extra string
	// stall is backup.stall_timeout (default 10s).
	stall time.Duration
	// keepVersions is backup.keep_versions (default 3).
	keepVersions int
	// margin is policy.free_space_margin in bytes.
	margin int64
}

// rig is one simulated iPhone, a configuration for it, and `backupd run`
// when started, all under one short directory. Its walker watches that
// directory: backup_dir's parent (when backup_dir is the default), a
// sentinel directory of bait beside backup_dir, the state_dir.
type rig struct {
	env
	backups, state, sentinel string
	udid                     string
	daemon                   *proc
	// ours are paths (relative to dir, slash-separated) the test itself
	// writes, such as a file that fills the disk; the walker skips them.
	ours []string
	// top is the test that made the rig: the daemon's clean-up belongs
	// to it, not to the subtest that happened to start it.
	top *testing.T
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	if o.files == 0 {
		o.files = 100
	}
	if o.maxSize == 0 {
		o.maxSize = 128 << 10
	}
	if o.stall == 0 {
		o.stall = 10 * time.Second
	}
	if o.keepVersions == 0 {
		o.keepVersions = 3
	}
	bin := binaries(t)
	dir := shortDir(t)
	r := &rig{env: env{bin: bin, dir: dir, config: filepath.Join(dir, "c.toml"), mux: filepath.Join(dir, "mux.sock")}, top: t}
	r.state, r.sentinel = filepath.Join(dir, "state"), filepath.Join(dir, "sentinel")
	if o.prepare != nil {
		r.backups = o.prepare(t, dir)
	} else {
		r.backups = filepath.Join(dir, "backups")
		if err := os.Mkdir(r.backups, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Bait: what the escape modes aim at, beside backup_dir and beside
	// its parent.
	for _, d := range []string{r.sentinel, filepath.Join(dir, "backupd-hostile-remove"), filepath.Join(filepath.Dir(dir), "backupd-hostile-remove")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "keep"), "bait")
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join(filepath.Dir(dir), "backupd-hostile-remove")) })
	writeFile(t, r.config, fmt.Sprintf(`state_dir = %q
backup_dir = %q
usbmuxd = "UNIX:%s"
log_level = "debug"
[policy]
free_space_margin = %d
retry_limit = 0
[stability]
settle = "50ms"
# Every trial pulls the cable: that is the test, not a bad cable.
flap_count = 1000000
[backup]
stall_timeout = %q
first_message_timeout = %q
keep_versions = %d
skip_icons = true
%s`, r.state, r.backups, r.mux, o.margin, o.stall.String(), o.stall.String(), o.keepVersions, o.extra))
	startSim(t, bin, r.mux, "--files", fmt.Sprint(o.files), "--max-size", fmt.Sprint(o.maxSize))
	list := strings.TrimPrefix(strings.TrimSpace(r.ctl(t, "list")), "ok")
	f := strings.Fields(list)
	if len(f) == 0 || strings.Count(list, "plugged=") != 1 {
		t.Fatalf("iphonesim ctl list: %q", list)
	}
	r.udid = f[0]
	return r
}

// startDaemon starts `backupd run` with env added to its environment and
// waits until its API answers.
func (r *rig) startDaemon(t *testing.T, env ...string) *proc {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	r.daemon = start(r.top, filepath.Join(r.bin, "backupd"), "run", "--config", r.config)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		os.Unsetenv(k)
	}
	d := r.daemon
	waitFor(t, "backupd's API", func() bool {
		select {
		case <-d.exited:
			t.Fatalf("backupd run exited at start: %v\n%s", d.err, d.out.String())
		default:
		}
		_, ok := r.tryStatus(t)
		return ok
	})
	return d
}

// tryStatus is `backupd status --json` when the daemon answers. (While a
// daemon starts, status may read a history.db that is not written yet
// and fail; that is not what these tests are about.)
func (r *rig) tryStatus(t *testing.T) (statusReport, bool) {
	t.Helper()
	out, _, code := cli(t, r.bin, "status", "--json", "--config", r.config)
	var rep statusReport
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil {
		return rep, false
	}
	return rep, true
}

// settled waits until the phone is connected and its worker is not busy.
func (r *rig) settled(t *testing.T) api.Device {
	t.Helper()
	var dev api.Device
	waitFor(t, "the phone to settle", func() bool {
		rep, ok := r.tryStatus(t)
		if !ok || len(rep.Devices) != 1 {
			return false
		}
		dev = rep.Devices[0].Device
		switch dev.State {
		case api.StateAbsent, api.StateSettling, api.StateChecking, api.StateQueued, api.StateBackingUp:
			return false
		}
		return dev.Connected
	})
	return dev
}

// backup runs `backupd backup UDID [--full] --wait` and returns its exit
// code and the run it made.
func (r *rig) backup(t *testing.T, full bool) (int, api.Run, string) {
	t.Helper()
	args := []string{"backup", r.udid, "--wait", "--config", r.config}
	if full {
		args = append(args, "--full")
	}
	out, errOut, code := cli(t, r.bin, args...)
	return code, r.lastRun(t), out + errOut
}

// mustBackup is a backup that must succeed; it returns the new latest
// backup's tree hash.
func (r *rig) mustBackup(t *testing.T, full bool) string {
	t.Helper()
	code, run, out := r.backup(t, full)
	if code != exitOK || run.Outcome != api.OutcomeSuccess {
		t.Fatalf("backup: exit %d, run %+v\n%s", code, run, out)
	}
	return r.latestHash(t)
}

// lastRun is the newest run in `backupd history --json`.
func (r *rig) lastRun(t *testing.T) api.Run {
	t.Helper()
	out, errOut, code := cli(t, r.bin, "history", r.udid, "--json", "--limit", "1", "--config", r.config)
	var runs []api.Run
	if err := json.Unmarshal([]byte(out), &runs); err != nil || code != exitOK || len(runs) != 1 {
		t.Fatalf("history --json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	return runs[0]
}

func (r *rig) latestHash(t *testing.T) string {
	t.Helper()
	h, err := repo.TreeHash(filepath.Join(r.backups, r.udid))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// stagingLeft lists what is left under .backupd/staging.
func (r *rig) stagingLeft(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(r.backups, ".backupd", "staging"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// allowed says where a backup may write: the staging area, the phone's
// latest backup and its versions, and the daemon's own files in
// state_dir.
func (r *rig) allowed(rel string) bool {
	root := func(dir string) string {
		p, err := filepath.Rel(r.dir, dir)
		if err != nil || strings.HasPrefix(p, "..") {
			return ""
		}
		return filepath.ToSlash(p)
	}
	under := func(rel, dir string) bool { return dir != "" && (rel == dir || strings.HasPrefix(rel, dir+"/")) }
	b, s := root(r.backups), root(r.state)
	if b == "" {
		// backup_dir is elsewhere (a mount); the walker watches it
		// through snapshot().
		return false
	}
	for _, o := range r.ours {
		if under(rel, o) {
			return true
		}
	}
	return under(rel, b+"/.backupd/staging") || under(rel, b+"/"+r.udid) ||
		under(rel, b+"/.backupd/versions/"+r.udid) ||
		under(rel, s+"/history.db") || under(rel, s+"/"+api.SocketName)
}

// snapshot records the watched tree.
func (r *rig) snapshot(t *testing.T) treeSnapshot {
	t.Helper()
	return snapshotTree(t, r.dir, r.allowed)
}

// outside compares the tree with before and reports what changed outside
// the allowed places (t.Error) and the bytes written there; it also
// counts the absolute path the hostile mode aims at.
func (r *rig) outside(t *testing.T, before treeSnapshot) int64 {
	t.Helper()
	n, changed := outsideBytes(before, r.snapshot(t))
	if fi, err := os.Lstat(hostileAbsolute); err == nil {
		changed = append(changed, "new "+hostileAbsolute)
		n += fi.Size()
	}
	if len(changed) > 0 {
		t.Errorf("%d bytes written outside the backup's roots; changes: %v", n, changed)
	}
	return n
}

// replug plugs the phone in again once its faults are cleared and waits for it to
// settle.
func (r *rig) replug(t *testing.T) {
	t.Helper()
	r.ctl(t, "fault", r.udid, "clear")
	r.ctl(t, "plug", r.udid)
	r.settled(t)
}

// requireRoot: a test that mounts needs root; outside CI it is skipped
// without it, in CI it fails (CI runs as root).
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must run this test as root: %s", why)
	}
	t.Skipf("not root: %s", why)
}

// TestOutsideBytes: the walker counts new, grown and rewritten files,
// and ignores the allowed places and files left alone.
func TestOutsideBytes(t *testing.T) {
	root := t.TempDir()
	allowed := func(rel string) bool { return rel == "ok" || strings.HasPrefix(rel, "ok/") }
	for _, d := range []string{"ok", "sentinel"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "sentinel", "same"), "12345")
	writeFile(t, filepath.Join(root, "sentinel", "grows"), "12345")
	writeFile(t, filepath.Join(root, "sentinel", "rewritten"), "12345")
	writeFile(t, filepath.Join(root, "sentinel", "goes"), "12345")
	before := snapshotTree(t, root, allowed)

	writeFile(t, filepath.Join(root, "ok", "inside"), strings.Repeat("x", 1000))
	writeFile(t, filepath.Join(root, "new"), "1234567")                 // 7
	writeFile(t, filepath.Join(root, "sentinel", "grows"), "123456789") // 4 more
	old := time.Now().Add(-time.Hour)
	writeFile(t, filepath.Join(root, "sentinel", "rewritten"), "abcde") // 5, another mtime
	if err := os.Chtimes(filepath.Join(root, "sentinel", "rewritten"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "sentinel", "goes")); err != nil {
		t.Fatal(err)
	}
	n, changed := outsideBytes(before, snapshotTree(t, root, allowed))
	want := []string{"grown sentinel/grows", "new new", "removed sentinel/goes", "rewritten sentinel/rewritten"}
	if n != 7+4+5 || !slices.Equal(changed, want) {
		t.Errorf("outsideBytes = %d, %q; want 16, %q", n, changed, want)
	}
	if n, changed := outsideBytes(before, before); n != 0 || len(changed) != 0 {
		t.Errorf("no change: %d, %v", n, changed)
	}
}
