package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim/simtest"
	"github.com/backupd/backupd/usbmux"
)

// The end-to-end tests build backupd and iphonesim and run them as a user
// would: a simulated iPhone, `backupd run` with a configuration file, and
// the other commands against it.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds backupd and iphonesim once per test binary and returns
// their directory.
func binaries(t *testing.T) string {
	t.Helper()
	goTool := simtest.RequireTool(t, "go")
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "bdbin")
		if buildErr != nil {
			return
		}
		args := append(append([]string{"build"}, buildFlags...), "-o", binDir+string(filepath.Separator), "github.com/backupd/backupd/cmd/backupd", "github.com/backupd/backupd/cmd/iphonesim")
		cmd := exec.Command(goTool, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// shortDir is a temporary directory with a short path: unix socket paths
// are limited to about 100 bytes.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// lockedBuffer collects a child's output.
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

// proc is a background process started by a test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	err    error
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(name), cmd: exec.Command(name, args...), out: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not stop within 15s of SIGTERM", p.name)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// cli runs one backupd command to its end.
func cli(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "backupd"), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done // the output is complete, and no longer written to
		t.Fatalf("backupd %s did not end within 60s; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), o.String(), e.String())
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// env is a simulated iPhone and a configuration pointing at it.
type env struct {
	bin, dir, config, mux string
}

func newEnv(t *testing.T, devices int) env {
	t.Helper()
	e := configEnv(t, "")
	startSim(t, e.bin, e.mux, "--devices", fmt.Sprint(devices), "--files", "100", "--max-size", "131072")
	return e
}

// configEnv is an env's directories and configuration, for a usbmuxd at
// mux (empty: the simulator's socket in the env's directory), with no
// simulator started.
func configEnv(t *testing.T, mux string) env {
	t.Helper()
	dir := shortDir(t)
	if mux == "" {
		mux = filepath.Join(dir, "mux.sock")
	}
	e := env{bin: binaries(t), dir: dir, config: filepath.Join(dir, "c.toml"), mux: mux}
	if err := os.Mkdir(e.backupDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.config, fmt.Sprintf(`state_dir = %q
backup_dir = %q
usbmuxd = "UNIX:%s"
log_level = "debug"
[policy]
free_space_margin = 0
retry_limit = 0
[stability]
settle = "50ms"
[backup]
stall_timeout = "10s"
skip_icons = true
`, e.stateDir(), e.backupDir(), e.mux))
	return e
}

func (e env) stateDir() string  { return filepath.Join(e.dir, "state") }
func (e env) backupDir() string { return filepath.Join(e.dir, "backups") }

// startSim starts iphonesim on the usbmuxd socket mux and waits for its
// control socket.
func startSim(t *testing.T, bin, mux string, args ...string) *proc {
	t.Helper()
	p := start(t, filepath.Join(bin, "iphonesim"), append([]string{"--socket", mux}, args...)...)
	waitFor(t, "iphonesim's control socket", func() bool {
		_, err := os.Stat(mux + ".ctl")
		return err == nil
	})
	return p
}

func (e env) ctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(e.bin, "iphonesim"), append([]string{"ctl", "--control", e.mux + ".ctl"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("iphonesim ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e env) status(t *testing.T) (statusReport, int) {
	t.Helper()
	out, errOut, code := cli(t, e.bin, "status", "--json", "--config", e.config)
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json (exit %d): %v\nstdout: %s\nstderr: %s", code, err, out, errOut)
	}
	return rep, code
}

func TestE2EBackupStatusAndFailure(t *testing.T) {
	e := newEnv(t, 1)
	daemon := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)

	// The plugged-in phone is backed up by itself.
	var rep statusReport
	waitFor(t, "the plug-in backup", func() bool {
		var code int
		rep, code = e.status(t)
		return code == exitOK && len(rep.Devices) == 1 && !rep.Devices[0].LastSuccess.IsZero()
	})
	d := rep.Devices[0]
	if !rep.DaemonRunning || d.Overdue || d.LastAttempt == nil || d.LastAttempt.Outcome != "success" || d.Name == "" {
		t.Errorf("status after the plug-in backup: %+v", rep)
	}
	udid := d.UDID
	out, _, code := cli(t, e.bin, "status", "--config", e.config)
	if code != exitOK || !strings.Contains(out, d.Name+" ("+udid[:8]) || !strings.Contains(out, "last backup ") || !strings.Contains(out, "just now") || !strings.Contains(out, "success") {
		t.Errorf("status: exit %d, output:\n%s", code, out)
	}
	out, _, code = cli(t, e.bin, "devices", "--config", e.config)
	if code != exitOK || !strings.Contains(out, udid+"  "+d.Name) || !strings.Contains(out, "connected over USB 480 Mbit/s, succeeded") {
		t.Errorf("devices: exit %d, output:\n%s", code, out)
	}

	// backup --wait: a manual backup that succeeds.
	out, errOut, code := cli(t, e.bin, "backup", "--wait", "--config", e.config)
	if code != exitOK || !strings.Contains(out, "backup done") {
		t.Fatalf("backup --wait: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// A cable pulled mid-backup: backup --wait fails with the cause and
	// its fix, and status says so.
	e.ctl(t, "fault", udid, "unplug-after-bytes=200000")
	out, errOut, code = cli(t, e.bin, "backup", udid, "--full", "--wait", "--config", e.config)
	if code != exitFailed || !strings.Contains(out, "disconnected") || !strings.Contains(out, "Fix: Keep the iPhone connected") {
		t.Fatalf("backup --wait with the cable pulled: exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitFailed, out, errOut)
	}
	out, _, code = cli(t, e.bin, "status", "--config", e.config)
	if code != exitOK || !strings.Contains(out, "failed (disconnected)") || !strings.Contains(out, "Fix: Keep the iPhone connected") {
		t.Errorf("status after the failure: exit %d, output:\n%s", code, out)
	}

	// history, through the daemon.
	out, _, code = cli(t, e.bin, "history", "--config", e.config, "--outcome", "failed", "--json")
	var runs []map[string]any
	if err := json.Unmarshal([]byte(out), &runs); err != nil || code != exitOK || len(runs) != 1 || runs[0]["cause"] != "disconnected" {
		t.Errorf("history --outcome failed --json: exit %d, err %v, output:\n%s", code, err, out)
	}
	out, _, code = cli(t, e.bin, "history", udid, "--config", e.config)
	if code != exitOK || strings.Count(out, "\n") != 3 {
		t.Errorf("history UDID: exit %d, want 3 runs:\n%s", code, out)
	}
	// Not on a terminal, backupd run logs JSON.
	if log := daemon.out.String(); !strings.HasPrefix(log, "{") || !strings.Contains(log, `"message":"backupd started"`) {
		t.Errorf("backupd run's log is not JSON:\n%.500s", log)
	}

	// A manual backup that policy refuses: a low battery. The first
	// refusal is recorded as a skipped run; the second, on the same
	// connection, is not, and --wait still ends.
	e.ctl(t, "fault", udid, "clear")
	e.ctl(t, "battery", udid, "5")
	e.ctl(t, "plug", udid)
	waitFor(t, "the replugged phone", func() bool {
		rep, _ := e.status(t)
		return len(rep.Devices) == 1 && rep.Devices[0].Connected && rep.Devices[0].State != "settling" && rep.Devices[0].State != "checking"
	})
	for i := range 2 {
		out, errOut, code = cli(t, e.bin, "backup", "--wait", "--config", e.config)
		t.Logf("backup --wait #%d, low battery: exit %d\n%s", i+1, code, out)
		if code != exitFailed || !strings.Contains(out, "battery_low") || !strings.Contains(out, "Fix: ") {
			t.Fatalf("backup --wait #%d with a low battery: exit %d, want %d; stdout:\n%s\nstderr:\n%s", i+1, code, exitFailed, out, errOut)
		}
	}

	// SIGTERM stops the daemon cleanly.
	if code := daemon.stop(t); code != exitOK {
		t.Fatalf("backupd run exited %d after SIGTERM, want 0", code)
	}

	// Without the daemon, status reads the history.
	rep, code = e.status(t)
	if code != exitNoDaemon || rep.DaemonRunning || len(rep.Devices) != 1 || rep.Devices[0].LastAttempt == nil || rep.Devices[0].LastAttempt.Cause != "battery_low" {
		t.Errorf("status --json without the daemon: exit %d, %+v", code, rep)
	}
	out, _, code = cli(t, e.bin, "status", "--config", e.config)
	if code != exitNoDaemon || !strings.Contains(out, "daemon not running") || !strings.Contains(out, "skipped (battery_low)") {
		t.Errorf("status without the daemon: exit %d:\n%s", code, out)
	}
	out, errOut, code = cli(t, e.bin, "history", "--config", e.config, "--limit", "2")
	if code != exitOK || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "daemon not running") {
		t.Errorf("history without the daemon: exit %d:\n%s\n%s", code, out, errOut)
	}
	_, errOut, code = cli(t, e.bin, "backup", "--config", e.config)
	if code != exitNoDaemon || !strings.Contains(errOut, "daemon not running") {
		t.Errorf("backup without the daemon: exit %d, want %d: %s", code, exitNoDaemon, errOut)
	}
}

// TestE2EDevicesWithoutDaemon: devices asks usbmuxd itself.
func TestE2EDevicesWithoutDaemon(t *testing.T) {
	e := newEnv(t, 2)
	out, errOut, code := cli(t, e.bin, "devices", "--config", e.config)
	if code != exitNoDaemon || !strings.Contains(errOut, "daemon not running") || strings.Count(out, " USB") != 2 {
		t.Errorf("devices: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.Count(out, "  trusted") != 2 || !strings.Contains(out, "Simulated iPhone") {
		t.Errorf("devices does not say both phones trust this computer:\n%s", out)
	}
	// A locked phone says so, and what to do; asking raises no prompt.
	locked := rep0(t, e)
	e.ctl(t, "lock", locked)
	out, _, code = cli(t, e.bin, "devices", "--json", "--config", e.config)
	var rep devicesReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitNoDaemon || len(rep.Plugged) != 2 || rep.DaemonRunning {
		t.Fatalf("devices --json: exit %d, err %v:\n%s", code, err, out)
	}
	for _, p := range rep.Plugged {
		want := usbmux.Trusted
		if p.UDID == locked {
			want = usbmux.DeviceLocked
		}
		if p.Trust != want || p.ConnType != "USB" || p.Speed == 0 {
			t.Errorf("%s: %+v, want trust %s over USB with its speed", p.UDID, p, want)
		}
	}
	out, _, _ = cli(t, e.bin, "devices", "--config", e.config)
	if !strings.Contains(out, "device_locked: "+cause.Lookup(cause.DeviceLocked).Fix) {
		t.Errorf("devices does not name the locked phone and its fix:\n%s", out)
	}
}

// rep0 is the UDID of the first phone usbmuxd lists.
func rep0(t *testing.T, e env) string {
	t.Helper()
	out, _, _ := cli(t, e.bin, "devices", "--json", "--config", e.config)
	var rep devicesReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Plugged) == 0 {
		t.Fatalf("devices --json: %v:\n%s", err, out)
	}
	return rep.Plugged[0].UDID
}

// TestE2EBadConfig: backupd run refuses a bad configuration file, naming
// the file, the line and the key, with the bad-config exit code.
func TestE2EBadConfig(t *testing.T) {
	bin := binaries(t)
	dir := shortDir(t)
	backups := filepath.Join(dir, "backups")
	if err := os.Mkdir(backups, 0o755); err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf("state_dir = %q\nbackup_dir = %q\n", filepath.Join(dir, "state"), backups)
	tests := []struct{ name, body, want string }{
		{"unknown key", head + "[policy]\nmin_intervall = \"1h\"\n", ":4: policy.min_intervall: unknown key"},
		{"wrong type", head + "[policy]\nmin_battery = \"low\"\n", ":4: policy.min_battery: wrong type"},
		{"negative interval", head + "\n[policy]\nmin_interval = \"-24h\"\n", ":5: policy.min_interval: must not be negative"},
		{"backup_dir missing", fmt.Sprintf("state_dir = %q\nbackup_dir = %q\n", filepath.Join(dir, "state"), filepath.Join(dir, "unmounted")), ":2: backup_dir:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".toml")
			writeFile(t, path, tt.body)
			_, errOut, code := cli(t, bin, "run", "--config", path)
			if code != exitBadConfig || !strings.Contains(errOut, "bad config") || !strings.Contains(errOut, path+tt.want) {
				t.Errorf("exit %d, want %d; stderr %q, want it to contain %q", code, exitBadConfig, errOut, path+tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		t.Error("a refused configuration still created state_dir")
	}
}
