package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/hook"
)

// hookServer is a webhook endpoint in the test process that keeps every
// event it receives.
type hookServer struct {
	mu     sync.Mutex
	events []hook.Event
	hdr    []http.Header
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev hook.Event
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.events = append(h.events, ev)
	h.hdr = append(h.hdr, r.Header.Clone())
	h.mu.Unlock()
}

// find returns the first event of a kind, and its request's headers.
func (h *hookServer) find(kind hook.Kind) (hook.Event, http.Header, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, ev := range h.events {
		if ev.Event == kind {
			return ev, h.hdr[i], true
		}
	}
	return hook.Event{}, nil, false
}

// freePort returns a loopback address nothing listens on (for a moment).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// scrapeMetrics returns the samples of /metrics as "name{labels}" → value,
// with labels as the exposition format writes them.
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestE2ENotifyAndMetrics: a daemon with a command hook, a webhook, two
// hooks that hang, and /metrics. A plug-in backup reaches both hooks as
// a success with the phone's UDID; ErrorCode 105 reaches them as a
// failure with host_disk_full and its fix; /metrics counts both; the
// hanging hooks hold up neither backup.
func TestE2ENotifyAndMetrics(t *testing.T) {
	e := newEnv(t, 1)
	hooked := &hookServer{}
	srv := httptest.NewServer(hooked)
	defer srv.Close()
	// A webhook that never answers within the test.
	hung := make(chan struct{})
	var hungCount int
	var hungMu sync.Mutex
	hangSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hungMu.Lock()
		hungCount++
		hungMu.Unlock()
		select {
		case <-hung:
		case <-r.Context().Done():
		}
	}))
	defer func() { close(hung); hangSrv.Close() }()

	out := filepath.Join(e.dir, "hook.out")
	script := filepath.Join(e.dir, "hook.sh")
	// One write per event, so the test never reads half a line.
	writeFile(t, script, "#!/bin/sh\nbody=$(cat)\nprintf '%s %s %s|%s\\n' \"$BACKUPD_EVENT\" \"$BACKUPD_UDID\" \"$BACKUPD_CAUSE\" \"$body\" >> "+out+"\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	hangScript := filepath.Join(e.dir, "hang.sh")
	writeFile(t, hangScript, "#!/bin/sh\nsleep 600\n")
	if err := os.Chmod(hangScript, 0o755); err != nil {
		t.Fatal(err)
	}
	metricsAddr := freePort(t)
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `
[notify]
timeout = "60s"
retries = 0
[[notify.hook]]
name = "test webhook"
webhook = %q
headers = { Authorization = "Bearer test-token" }
[[notify.hook]]
command = [%q]
events = ["success", "failure"]
[[notify.hook]]
name = "hangs"
webhook = %q
[[notify.hook]]
command = [%q]
[metrics]
listen = %q
`, srv.URL+"/hook", script, hangSrv.URL, hangScript, metricsAddr)
	f.Close()

	var udid string
	for line := range strings.SplitSeq(e.ctl(t, "list"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] != "ok" {
			udid = f[0]
		}
	}
	if udid == "" {
		t.Fatal("no phone in iphonesim ctl list")
	}

	daemon := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)

	// The plug-in backup.
	var ok bool
	var success hook.Event
	var hdr http.Header
	waitFor(t, "the success event at the webhook", func() bool {
		success, hdr, ok = hooked.find(hook.KindSuccess)
		return ok
	})
	if success.UDID != udid || success.Outcome != "success" || success.Device == "" || success.Bytes <= 0 || success.Files <= 0 ||
		success.RunID == 0 || success.Trigger != "plug_in" || success.DurationSeconds <= 0 || success.LastSuccess.IsZero() ||
		success.Hostname == "" || success.Version != hook.SchemaVersion || !strings.Contains(success.Text, "backup done") {
		t.Errorf("success event: %+v", success)
	}
	if hdr.Get("Authorization") != "Bearer test-token" {
		t.Errorf("the webhook's header did not come: %v", hdr)
	}

	// A failure: the phone answers ErrorCode 105.
	e.ctl(t, "fault", udid, "error-code=105")
	stdout, stderr, code := cli(t, e.bin, "backup", "--wait", "--config", e.config)
	if code != exitFailed {
		t.Fatalf("backup --wait with ErrorCode 105: exit %d, want %d\n%s\n%s", code, exitFailed, stdout, stderr)
	}
	var failure hook.Event
	waitFor(t, "the failure event at the webhook", func() bool {
		failure, _, ok = hooked.find(hook.KindFailure)
		return ok
	})
	fix := cause.Lookup(cause.HostDiskFull).Fix
	if failure.UDID != udid || failure.Cause != string(cause.HostDiskFull) || failure.Fix != fix || failure.Outcome != "failed" ||
		failure.DeviceErrorCode != 105 || failure.Trigger != "manual" || !failure.LastSuccess.Equal(success.LastSuccess) {
		t.Errorf("failure event: %+v", failure)
	}

	// The command hook saw both, on stdin and in its environment.
	var lines []string
	waitFor(t, "the command hook's two events", func() bool {
		data, _ := os.ReadFile(out)
		lines = strings.Split(strings.TrimSpace(string(data)), "\n")
		return len(lines) == 2
	})
	for i, want := range []string{"success " + udid + " |", "failure " + udid + " host_disk_full|"} {
		env, body, _ := strings.Cut(lines[i], "|")
		if env+"|" != want {
			t.Errorf("command hook event %d: environment %q, want %q", i+1, env+"|", want)
		}
		var ev hook.Event
		if err := json.Unmarshal([]byte(body), &ev); err != nil || ev.UDID != udid {
			t.Errorf("command hook event %d: stdin %q (%v)", i+1, body, err)
		}
		if i == 1 && ev.Fix != fix {
			t.Errorf("command hook's failure: fix %q, want %q", ev.Fix, fix)
		}
	}

	// A backup that waits for the passcode, which nobody enters: one
	// passcode event, then the failure.
	e.ctl(t, "fault", udid, "clear")
	e.ctl(t, "fault", udid, "passcode-never-entered=true", "passcode-delay=2s")
	if _, _, code := cli(t, e.bin, "backup", "--wait", "--config", e.config); code != exitFailed {
		t.Fatalf("backup --wait without the passcode: exit %d, want %d", code, exitFailed)
	}
	waitFor(t, "the passcode failure at the webhook", func() bool {
		hooked.mu.Lock()
		defer hooked.mu.Unlock()
		return len(hooked.events) >= 4
	})
	hooked.mu.Lock()
	var kinds []string
	for _, ev := range hooked.events {
		kinds = append(kinds, string(ev.Event)+":"+ev.Cause)
		if ev.UDID != udid {
			t.Errorf("event for %q, want %q: %+v", ev.UDID, udid, ev)
		}
	}
	hooked.mu.Unlock()
	if got, want := strings.Join(kinds, " "), "success: failure:host_disk_full passcode: failure:passcode_not_entered"; got != want {
		t.Errorf("webhook events %q, want %q", got, want)
	}
	if ev, _, _ := hooked.find(hook.KindPasscode); !strings.Contains(ev.Text, "enter the passcode") {
		t.Errorf("passcode event text %q", ev.Text)
	}

	// All backups ended while the hanging hook still held its first
	// event: the backups did not wait for it.
	hungMu.Lock()
	if hungCount != 1 {
		t.Errorf("the hanging webhook got %d requests, want 1 (still stuck on the first)", hungCount)
	}
	hungMu.Unlock()

	// backup --wait returns when the run is recorded, a moment before
	// its slot is given back.
	var m map[string]float64
	waitFor(t, "backups_running 0", func() bool {
		m = scrapeMetrics(t, metricsAddr)
		return m["backupd_backups_running"] == 0
	})
	wantMetrics := map[string]float64{
		`backupd_runs_total{outcome="success",cause=""}`:                     1,
		`backupd_runs_total{outcome="failed",cause="host_disk_full"}`:        1,
		`backupd_backup_duration_seconds_count{outcome="success"}`:           1,
		`backupd_backup_duration_seconds_bucket{outcome="failed",le="+Inf"}`: 2,
		`backupd_devices_connected`:                                          1,
		`backupd_backups_running`:                                            0,
		`backupd_usbmuxd_up`:                                                 1,
	}
	for k, want := range wantMetrics {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if m["backupd_backup_bytes_total"] < float64(success.Bytes) {
		t.Errorf("backupd_backup_bytes_total = %v, want at least the success's %d", m["backupd_backup_bytes_total"], success.Bytes)
	}
	last := fmt.Sprintf(`backupd_last_success_timestamp_seconds{udid=%q,name=%q}`, udid, success.Device)
	if got := m[last]; got != float64(success.LastSuccess.UnixMilli())/1000 {
		t.Errorf("%s = %v, want %v", last, got, float64(success.LastSuccess.UnixMilli())/1000)
	}

	// It stops in its bound although two hooks still hang.
	if code := daemon.stop(t); code != exitOK {
		t.Errorf("backupd run exited %d after SIGTERM", code)
	}

	// After a restart, the last success comes from the history.
	daemon = start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	waitFor(t, "metrics after a restart", func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return true
	})
	if got := scrapeMetrics(t, metricsAddr)[last]; got != float64(success.LastSuccess.UnixMilli())/1000 {
		t.Errorf("after a restart %s = %v, want %v", last, got, float64(success.LastSuccess.UnixMilli())/1000)
	}
	daemon.stop(t)
}

// TestE2ELogFormat: log_format in the file chooses the log's format, and
// --log-format overrides it.
func TestE2ELogFormat(t *testing.T) {
	e := newEnv(t, 1)
	data, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.config, "log_format = \"console\"\n"+string(data))
	tests := []struct {
		name string
		flag []string
		json bool
	}{
		{"the file's console", nil, false},
		{"the flag's json", []string{"--log-format", "json"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, filepath.Join(e.bin, "backupd"), append([]string{"run", "--config", e.config}, tt.flag...)...)
			waitFor(t, "backupd started", func() bool { return strings.Contains(p.out.String(), "backupd started") })
			if code := p.stop(t); code != exitOK {
				t.Errorf("exit %d", code)
			}
			first, _, _ := strings.Cut(p.out.String(), "\n")
			if isJSON := json.Valid([]byte(first)); isJSON != tt.json {
				t.Errorf("first log line %q: JSON %v, want %v", first, isJSON, tt.json)
			}
		})
	}
}
