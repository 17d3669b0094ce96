package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
	"github.com/backupd/backupd/usbmux"
)

// testCtx ends with the test, and bounds it so that a hang fails the test
// rather than the whole run.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testOptions are short waits, so that faults resolve in seconds.
func testOptions(t testing.TB) Options {
	return Options{
		FirstMessageTimeout: 20 * time.Second,
		StallTimeout:        20 * time.Second,
		LockTimeout:         time.Second,
		LockRetry:           50 * time.Millisecond,
		ServiceTimeout:      10 * time.Second,
		Logger:              testLogger(t),
	}
}

// testLogger writes the engine's log into the test's output, shown only
// when it fails (or with -v).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// rig is a simulated device, a usbmux client for it, a repository in a
// temporary directory and an engine.
type rig struct {
	t    testing.TB
	sim  *sim.Sim
	dev  *sim.Device
	mux  *usbmux.Client
	base string // holds backups/ and anything a test plants beside it
	dir  string // the backup directory
	repo *repo.Repo
	// target is where runs go: the repo, or a wrapper around it.
	target Repository
	eng    *Engine
}

func newRig(t testing.TB, cfg sim.DeviceConfig, opts Options) *rig {
	t.Helper()
	s, devs := simtest.StartT(t, cfg)
	addr, err := usbmux.ParseAddr(s.Address())
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	dir := filepath.Join(base, "backups")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mux := usbmux.NewClient(usbmux.Config{Addr: addr, Timeout: 10 * time.Second})
	rp, err := repo.Open(dir, repo.Options{KeepLast: 3, Logger: opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rp.Close() })
	return &rig{t: t, sim: s, dev: devs[0], mux: mux, base: base, dir: dir, repo: rp, target: FromRepo(rp), eng: New(mux, opts)}
}

// device returns the usbmux view of the simulated device, waiting a
// little for a replug to show.
func (r *rig) device() usbmux.Device {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		list, err := r.mux.ListDevices(testCtx(r.t))
		if err != nil {
			r.t.Fatal(err)
		}
		for _, d := range list {
			if d.UDID == r.dev.UDID() {
				return d
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("device %s not listed", r.dev.UDID())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rig) run(t Target) (Result, error) {
	r.t.Helper()
	if t.Repo == nil {
		t.Repo = r.target
	}
	return r.eng.Run(testCtx(r.t), r.device(), t)
}

// mustBackup runs a backup that must succeed.
func (r *rig) mustBackup(t Target) Result {
	r.t.Helper()
	res, err := r.run(t)
	if err != nil {
		r.t.Fatalf("backup: %v (result %+v)", err, res)
	}
	return res
}

func (r *rig) latest() string { return filepath.Join(r.dir, r.dev.UDID()) }

func (r *rig) latestHash() string {
	r.t.Helper()
	h, err := repo.TreeHash(r.latest())
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// stagingLeft reports whether a staging area of the device is left.
func (r *rig) stagingLeft() bool {
	_, err := os.Lstat(filepath.Join(r.dir, ".backupd", "staging", r.dev.UDID()))
	return err == nil
}

// versions lists the device's older backups.
func (r *rig) versions() []repo.Version {
	r.t.Helper()
	vs, err := r.repo.Versions(r.dev.UDID())
	if err != nil {
		r.t.Fatal(err)
	}
	return vs
}

// plantingRepo wraps a Repository and runs plant on each new staging
// directory, as a hostile test needs to lay bait inside it.
type plantingRepo struct {
	Repository
	plant func(dir string) error
}

func (p plantingRepo) Begin(ctx context.Context, udid string) (Staging, error) {
	s, err := p.Repository.Begin(ctx, udid)
	if err != nil {
		return nil, err
	}
	if err := p.plant(s.Dir()); err != nil {
		s.Abort()
		return nil, err
	}
	return s, nil
}

// checkMatchesDevice checks that the backup in dir holds exactly the
// device's files, by the fileIDs its Manifest.db lists and their
// content.
func checkMatchesDevice(t testing.TB, dir string, d *sim.Device) {
	t.Helper()
	for _, name := range []string{"Info.plist", "Manifest.plist", "Manifest.db", "Status.plist"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("backup lacks %s: %v", name, err)
		}
	}
	ids, err := manifestFileIDs(context.Background(), filepath.Join(dir, "Manifest.db"))
	if err != nil {
		t.Fatal(err)
	}
	want := d.FileHashes()
	if len(ids) != len(want) {
		t.Errorf("Manifest.db lists %d files, the device has %d", len(ids), len(want))
	}
	for _, id := range ids {
		got, err := fileHash(filepath.Join(dir, id[:2], id))
		if err != nil {
			t.Errorf("Manifest.db lists %s: %v", id, err)
			continue
		}
		if got != want[id] {
			t.Errorf("file %s: hash %s, device has %s", id, got, want[id])
		}
	}
	var st map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "Status.plist"))
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.Decode(b, &st); err != nil || st["SnapshotState"] != "finished" {
		t.Fatalf("Status.plist %v %v", st, err)
	}
}

func fileHash(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
