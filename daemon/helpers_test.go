package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/usbmux"
)

// childEnv, set to a configuration file (JSON), makes the test binary run
// a daemon instead of the tests: the kill -9 test runs one as a child
// process, and scripts/idle-cpu.sh measures one.
const childEnv = "BACKUPD_TEST_DAEMON"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(childDaemon(path))
	}
	os.Exit(m.Run())
}

// childDaemon runs a daemon as main will: JSON logs on stderr, go-ios
// routed into them, stopped by SIGTERM or SIGINT.
func childDaemon(path string) int {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backupd test daemon:", err)
		return 2
	}
	log, err := NewLogger(os.Stderr, LogJSON, cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backupd test daemon:", err)
		return 2
	}
	RouteGoIOSLogs(log)
	d, err := New(cfg, Options{Logger: log, Version: "test"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "backupd test daemon:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "backupd:", err)
		return 1
	}
	return 0
}

// shortTempDir returns a directory whose path is short enough for a unix
// socket inside it (about 100 bytes), removed when the test ends.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// testConfig is a configuration for tests: tiny settle and recheck
// times, no retries, no free space margin, the backup directory made.
func testConfig(t testing.TB, s *sim.Sim) Config {
	t.Helper()
	base := shortTempDir(t)
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(base, "state")
	cfg.BackupDir = filepath.Join(base, "backups")
	if err := os.MkdirAll(cfg.BackupDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if s != nil {
		cfg.Usbmuxd = s.Address()
	}
	cfg.LogLevel = "debug"
	cfg.Stability.Settle = Duration(50 * time.Millisecond)
	cfg.Policy.FreeSpaceMargin = 0
	cfg.Policy.RetryLimit = 0
	cfg.Policy.TrustRecheck = Duration(100 * time.Millisecond)
	cfg.Backup.StallTimeout = Duration(10 * time.Second)
	cfg.Backup.FirstMessageTimeout = Duration(20 * time.Second)
	cfg.Backup.LockTimeout = Duration(time.Second)
	cfg.Backup.SkipIcons = true
	return cfg
}

// testLogger writes the daemon's log into the test's output, shown when
// it fails or with -v.
func testLogger(t testing.TB) zerolog.Logger {
	w := &testWriter{t: t}
	// Registered before the daemon's own clean-up, so it runs after it:
	// a goroutine that logs once the test is over must not panic.
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return zerolog.New(zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: "15:04:05.000"}).
		Level(zerolog.DebugLevel).With().Timestamp().Logger()
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// running is a daemon running in this process.
type running struct {
	d      *Daemon
	c      *client.Client
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// start runs a daemon, logging into the test, and waits until its API
// answers; it is stopped when the test ends.
func start(t testing.TB, cfg Config, opts Options) *running {
	t.Helper()
	opts.Logger = testLogger(t)
	opts.Version = "test"
	d, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, c: client.New(filepath.Join(cfg.StateDir, api.SocketName)), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() { r.stop(t); r.c.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		hctx, hcancel := context.WithTimeout(context.Background(), time.Second)
		_, err := r.c.Health(hctx)
		hcancel()
		if err == nil {
			return r
		}
		select {
		case err := <-r.done:
			t.Fatalf("daemon stopped at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon API never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop stops the daemon and returns what Run returned.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(15 * time.Second):
			r.err = errors.New("daemon did not stop within 15 s")
			t.Error(r.err)
		}
	})
	return r.err
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitState waits until the API shows the device in one of states and
// returns it.
func waitState(t testing.TB, c *client.Client, udid string, timeout time.Duration, states ...api.State) api.Device {
	t.Helper()
	var dev api.Device
	waitFor(t, timeout, fmt.Sprintf("%s in state %v", udid, states), func() bool {
		d, err := c.Device(ctxT(t), udid)
		if err != nil {
			return false
		}
		dev = d
		for _, s := range states {
			if d.State == s {
				return true
			}
		}
		return false
	})
	return dev
}

// runsOf returns every run of a device, newest first.
func runsOf(t testing.TB, c *client.Client, udid string) []api.Run {
	t.Helper()
	page, err := c.History(ctxT(t), udid, api.RunsQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return page.Runs
}

// waitRuns waits until a device has n runs that are not running, and
// returns them, newest first.
func waitRuns(t testing.TB, c *client.Client, udid string, n int, timeout time.Duration) []api.Run {
	t.Helper()
	var runs []api.Run
	waitFor(t, timeout, fmt.Sprintf("%d finished runs of %s", n, udid), func() bool {
		runs = runsOf(t, c, udid)
		done := 0
		for _, r := range runs {
			if r.Outcome != api.OutcomeRunning {
				done++
			}
		}
		return done >= n
	})
	return runs
}

// latestHash is the tree hash of a device's latest backup.
func latestHash(t testing.TB, cfg Config, udid string) string {
	t.Helper()
	h, err := repo.TreeHash(filepath.Join(cfg.BackupDir, udid))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// stagingLeft lists what is left in the backup directory's staging.
func stagingLeft(t testing.TB, cfg Config) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(cfg.BackupDir, ".backupd", "staging"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// countingBackuper wraps a Backuper and records how many backups ran at
// once at most.
type countingBackuper struct {
	next Backuper

	mu      sync.Mutex
	now     int
	peak    int
	started int
}

func (c *countingBackuper) Run(ctx context.Context, dev usbmux.Device, t backup.Target) (backup.Result, error) {
	c.mu.Lock()
	c.now++
	c.started++
	c.peak = max(c.peak, c.now)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.now--
		c.mu.Unlock()
	}()
	return c.next.Run(ctx, dev, t)
}

func (c *countingBackuper) stats() (peak, started int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak, c.started
}

// engineFor is the real engine over a simulator, for tests that wrap it.
func engineFor(t testing.TB, s *sim.Sim, cfg Config) *backup.Engine {
	t.Helper()
	addr, err := usbmux.ParseAddr(s.Address())
	if err != nil {
		t.Fatal(err)
	}
	return backup.New(usbmux.NewClient(usbmux.Config{Addr: addr}), backup.Options{
		StallTimeout:        cfg.Backup.StallTimeout.D(),
		FirstMessageTimeout: cfg.Backup.FirstMessageTimeout.D(),
		LockTimeout:         cfg.Backup.LockTimeout.D(),
		SkipIcons:           true,
	})
}
