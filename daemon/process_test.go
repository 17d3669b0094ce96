package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
	"github.com/backupd/backupd/store"
	"github.com/backupd/backupd/usbmux"
)

// child is a daemon running in a child process: this test binary,
// re-executed with childEnv set (see TestMain).
type child struct {
	cmd    *exec.Cmd
	c      *client.Client
	stderr *lockedBuffer
	exited chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startChild starts a daemon process with cfg and waits until its API
// answers. Its log is shown if the test fails.
func startChild(t *testing.T, cfg Config) *child {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shortTempDir(t), "config.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ch := &child{
		cmd:    exec.Command(os.Args[0], "-test.run=^$"),
		c:      client.New(filepath.Join(cfg.StateDir, api.SocketName)),
		stderr: &lockedBuffer{},
		exited: make(chan error, 1),
	}
	// The race detector waits a second at exit by default, which would
	// count against the 10 s a stop may take.
	ch.cmd.Env = append(os.Environ(), childEnv+"="+path, "GORACE=atexit_sleep_ms=0")
	ch.cmd.Stderr = ch.stderr
	if err := ch.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { ch.exited <- ch.cmd.Wait() }()
	t.Cleanup(func() {
		ch.cmd.Process.Kill()
		<-ch.exited
		ch.c.Close()
		if t.Failed() || os.Getenv("SHOWCHILD") != "" {
			t.Logf("daemon process %d log:\n%s", ch.cmd.Process.Pid, ch.stderr.String())
		}
	})
	waitFor(t, 20*time.Second, "the daemon process's API", func() bool {
		select {
		case err := <-ch.exited:
			ch.exited <- err
			t.Fatalf("daemon process exited at start: %v\n%s", err, ch.stderr.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := ch.c.Health(ctx)
		return err == nil
	})
	return ch
}

// waitProgress waits for a progress event of udid with bytes received.
func waitProgress(t *testing.T, events *client.EventStream, udid string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ev, err := nextEvent(events, time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for progress: %v", err)
		}
		if ev.Type == api.EventProgress && ev.UDID == udid && ev.Progress != nil && ev.Progress.Bytes > 0 {
			return
		}
	}
	t.Fatal("no progress within 20 s")
}

// TestKillMidBackup: a daemon killed with SIGKILL mid-backup leaves a
// running run and a staging area; the next start records the run
// interrupted, removes the staging, keeps the last good backup as it was,
// and the following backup succeeds. Then SIGTERM mid-backup stops that
// daemon within 10 s with the run recorded interrupted.
func TestKillMidBackup(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 120, MaxSize: 128 << 10}})
	dev := devs[0]
	cfg := testConfig(t, s)
	first := startChild(t, cfg)
	waitRuns(t, first.c, dev.UDID(), 1, 30*time.Second)
	before := latestHash(t, cfg, dev.UDID())

	// Slow enough that the kill lands mid-transfer.
	dev.SetFaults(sim.Faults{SlowLinkBytesPerSec: 512 << 10})
	events, err := first.c.Events(ctxT(t), dev.UDID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.c.BackupNow(ctxT(t), dev.UDID(), api.BackupRequest{Full: true}); err != nil {
		t.Fatal(err)
	}
	waitProgress(t, events, dev.UDID())
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	first.exited <- nil
	if left := stagingLeft(t, cfg); len(left) == 0 {
		t.Fatal("no staging left after the kill: the kill did not land mid-backup")
	}
	if _, err := os.Lstat(filepath.Join(cfg.StateDir, api.SocketName)); err != nil {
		t.Fatalf("the killed daemon's socket is gone (%v); the test wants a stale one", err)
	}

	dev.SetFaults(sim.Faults{})
	second := startChild(t, cfg)
	runs := runsOf(t, second.c, dev.UDID())
	if len(runs) != 2 || runs[0].Outcome != api.OutcomeInterrupted || runs[0].Cause != cause.Interrupted || runs[0].Trigger != api.TriggerManual {
		t.Fatalf("runs after the restart: %+v", runs)
	}
	if left := stagingLeft(t, cfg); len(left) != 0 {
		t.Errorf("staging left after the restart: %v", left)
	}
	if h := latestHash(t, cfg, dev.UDID()); h != before {
		t.Error("the last good backup changed")
	}
	waitState(t, second.c, dev.UDID(), 10*time.Second, api.StateUpToDate)
	if _, err := second.c.BackupNow(ctxT(t), dev.UDID(), api.BackupRequest{}); err != nil {
		t.Fatal(err)
	}
	runs = waitRuns(t, second.c, dev.UDID(), 3, 30*time.Second)
	if runs[0].Outcome != api.OutcomeSuccess {
		t.Fatalf("the backup after the restart: %+v", runs[0])
	}

	// SIGTERM mid-backup: out within 10 s, the run interrupted, no
	// staging.
	dev.SetFaults(sim.Faults{SlowLinkBytesPerSec: 512 << 10})
	events2, err := second.c.Events(ctxT(t), dev.UDID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.c.BackupNow(ctxT(t), dev.UDID(), api.BackupRequest{Full: true}); err != nil {
		t.Fatal(err)
	}
	waitProgress(t, events2, dev.UDID())
	termAt := time.Now()
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second.exited:
		second.exited <- err
		if err != nil {
			t.Errorf("daemon exited with %v after SIGTERM", err)
		}
		t.Logf("stopped %v after SIGTERM", time.Since(termAt).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not exit within 10 s of SIGTERM")
	}
	if left := stagingLeft(t, cfg); len(left) != 0 {
		t.Errorf("staging left after SIGTERM: %v", left)
	}
	if _, err := os.Lstat(filepath.Join(cfg.StateDir, api.SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after a clean stop: %v", err)
	}
	st, err := store.Open(filepath.Join(cfg.StateDir, "history.db"), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := st.History(dev.UDID(), store.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got := page.Runs[0]; got.Outcome != store.OutcomeInterrupted || got.Cause != cause.Interrupted || !got.End.After(got.Start) {
		t.Errorf("the run SIGTERM stopped: %+v", got)
	}
}

// TestSecondDaemonRefused: a second daemon on the same state_dir refuses
// to start, saying why, and the first goes on unharmed; so does one on
// another state_dir but the same backup_dir.
func TestSecondDaemonRefused(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20}})
	dev := devs[0]
	cfg := testConfig(t, s)
	r := start(t, cfg, Options{})
	waitRuns(t, r.c, dev.UDID(), 1, 30*time.Second)

	refused := func(cfg Config, want string) {
		t.Helper()
		d, err := New(cfg, Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		began := time.Now()
		err = d.Run(ctx)
		if !errors.Is(err, ErrAlreadyRunning) || !strings.Contains(err.Error(), want) {
			t.Fatalf("second daemon: %v; want ErrAlreadyRunning naming %s", err, want)
		}
		t.Logf("refused in %v: %v", time.Since(began).Round(time.Millisecond), err)
	}
	refused(cfg, "history.db")
	other := cfg
	other.StateDir = filepath.Join(shortTempDir(t), "state")
	refused(other, cfg.BackupDir)

	if _, err := os.Lstat(filepath.Join(cfg.StateDir, api.SocketName)); err != nil {
		t.Fatalf("the first daemon's socket: %v", err)
	}
	h, err := r.c.Health(ctxT(t))
	if err != nil || h.PID != os.Getpid() {
		t.Fatalf("the first daemon after the second tried: %+v %v", h, err)
	}
	if _, err := r.c.BackupNow(ctxT(t), dev.UDID(), api.BackupRequest{}); err != nil {
		t.Fatal(err)
	}
	if runs := waitRuns(t, r.c, dev.UDID(), 2, 30*time.Second); runs[0].Outcome != api.OutcomeSuccess {
		t.Fatalf("the first daemon's next backup: %+v", runs[0])
	}
}

// TestShutdownMidBackup: stopping the daemon mid-backup records the run
// interrupted, discards the staging, keeps the last good backup and
// returns well within 10 s.
func TestShutdownMidBackup(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 100, MaxSize: 128 << 10}})
	dev := devs[0]
	cfg := testConfig(t, s)
	r := start(t, cfg, Options{})
	waitRuns(t, r.c, dev.UDID(), 1, 30*time.Second)
	before := latestHash(t, cfg, dev.UDID())

	dev.SetFaults(sim.Faults{SlowLinkBytesPerSec: 256 << 10})
	events, err := r.c.Events(ctxT(t), dev.UDID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.BackupNow(ctxT(t), dev.UDID(), api.BackupRequest{Full: true}); err != nil {
		t.Fatal(err)
	}
	waitProgress(t, events, dev.UDID())
	began := time.Now()
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("shutdown took %v", took)
	} else {
		t.Logf("shutdown took %v", took.Round(time.Millisecond))
	}
	if left := stagingLeft(t, cfg); len(left) != 0 {
		t.Errorf("staging left: %v", left)
	}
	if h := latestHash(t, cfg, dev.UDID()); h != before {
		t.Error("the last good backup changed")
	}
	st, err := store.Open(filepath.Join(cfg.StateDir, "history.db"), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := st.History(dev.UDID(), store.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 2 || page.Runs[0].Outcome != store.OutcomeInterrupted || page.Runs[0].Cause != cause.Interrupted {
		t.Fatalf("runs: %+v", page.Runs)
	}
}

// stuckBackuper reports a little progress and then none until cancelled,
// as a device that hangs mid-transfer while its connection stays up.
type stuckBackuper struct{}

func (stuckBackuper) Run(ctx context.Context, dev usbmux.Device, t backup.Target) (backup.Result, error) {
	t.Progress(backup.Progress{Percent: 3, Bytes: 1000, Files: 1})
	// The same report again is no progress.
	t.Progress(backup.Progress{Percent: 3, Bytes: 1000, Files: 1})
	<-ctx.Done()
	return backup.Result{UDID: dev.UDID, Bytes: 1000, Files: 1, Cause: cause.Interrupted}, cause.New(cause.Interrupted, ctx.Err())
}

// TestStallWatchdog: no progress for stall_timeout cancels the backup as
// stalled, whether the engine's own timer or the daemon's watchdog sees
// it first.
func TestStallWatchdog(t *testing.T) {
	t.Parallel()
	t.Run("watchdog", func(t *testing.T) {
		t.Parallel()
		s, devs := simtest.StartT(t, sim.DeviceConfig{})
		cfg := testConfig(t, s)
		cfg.Backup.StallTimeout = Duration(300 * time.Millisecond)
		r := start(t, cfg, Options{Backuper: stuckBackuper{}})
		runs := waitRuns(t, r.c, devs[0].UDID(), 1, 10*time.Second)
		if runs[0].Outcome != api.OutcomeFailed || runs[0].Cause != cause.Stalled || !strings.Contains(runs[0].Note, "no progress") {
			t.Fatalf("run: %+v", runs[0])
		}
		if took := runs[0].End.Sub(runs[0].Start); took > 3*time.Second {
			t.Errorf("the stall was noticed after %v", took)
		}
	})
	t.Run("device stalls", func(t *testing.T) {
		t.Parallel()
		s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 50, MaxSize: 128 << 10},
			Faults: sim.Faults{StallAfterBytes: 100 << 10}})
		cfg := testConfig(t, s)
		cfg.Backup.StallTimeout = Duration(500 * time.Millisecond)
		r := start(t, cfg, Options{})
		runs := waitRuns(t, r.c, devs[0].UDID(), 1, 20*time.Second)
		if runs[0].Outcome != api.OutcomeFailed || runs[0].Cause != cause.Stalled {
			t.Fatalf("run: %+v", runs[0])
		}
		if left := stagingLeft(t, cfg); len(left) != 0 {
			t.Errorf("staging left: %v", left)
		}
	})
}
