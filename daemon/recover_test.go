package daemon

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/hook"
	"github.com/backupd/backupd/store"
)

// TestRecoveredRunsAreTold: a run that start-up recovery ends is told
// like any other: the hooks hear of it, and a recovered success moves
// the last-success metric. A run left running whose backup was committed
// (the daemon was killed after the commit's renames) is recovered as a
// success; one without a committed backup as interrupted.
func TestRecoveredRunsAreTold(t *testing.T) {
	tests := []struct {
		name      string
		committed bool
		want      hook.Kind
		outcome   string
	}{
		{"recovered success", true, hook.KindSuccess, api.OutcomeSuccess},
		{"interrupted", false, hook.KindInterrupted, api.OutcomeInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const udid = "00008030-001A2B3C4D5E802E"
			sink := newWebhookSink(t)

			cfg := testConfig(t, nil)
			cfg.Usbmuxd = "UNIX:" + filepath.Join(cfg.StateDir, "no-usbmuxd.sock")
			cfg.Notify.Hooks = []HookConfig{{Webhook: sink.url, Events: []string{"success", "interrupted"}}}
			cfg.Metrics.Listen = freeLoopback(t)
			leaveRunning(t, cfg, udid, tt.committed)

			r := start(t, cfg, Options{})
			var ev hook.Event
			waitFor(t, 10*time.Second, "the recovered run's hook event", func() bool {
				for _, e := range sink.find("") {
					if e.UDID == udid {
						ev = e
						return true
					}
				}
				return false
			})
			if ev.Event != tt.want || ev.Outcome != tt.outcome {
				t.Errorf("hook event %q outcome %q, want %q %q", ev.Event, ev.Outcome, tt.want, tt.outcome)
			}
			runs := runsOf(t, r.c, udid)
			if len(runs) != 1 || runs[0].Outcome != tt.outcome {
				t.Fatalf("history: %+v, want one %s run", runs, tt.outcome)
			}
			last, ok := lastSuccessMetric(t, cfg.Metrics.Listen, udid)
			switch {
			case tt.committed && (!ok || last != float64(runs[0].End.UnixMilli())/1000):
				t.Errorf("last-success metric %v (present %v), want the recovered run's end %v", last, ok, runs[0].End)
			case !tt.committed && ok:
				t.Errorf("last-success metric %v for a device that never succeeded", last)
			}
		})
	}
}

// leaveRunning makes the history and backup_dir a daemon killed during a
// backup of udid leaves: the run still running and, when committed, the
// latest backup written after the run began.
func leaveRunning(t *testing.T, cfg Config, udid string, committed bool) {
	t.Helper()
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(cfg.StateDir, "history.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now().Add(-time.Minute)
	if err := st.UpsertDevice(store.DeviceFacts{UDID: udid, Name: "iPhone"}, began); err != nil {
		t.Fatal(err)
	}
	if _, err := st.BeginRun(store.Run{UDID: udid, DeviceName: "iPhone", Trigger: store.TriggerPlugIn, Start: began}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if committed {
		if err := os.Mkdir(filepath.Join(cfg.BackupDir, udid), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// freeLoopback is a loopback address nothing listens on, for a server
// whose address the test must know.
func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lastSuccessMetric scrapes udid's backupd_last_success_timestamp_seconds
// from the metrics endpoint at addr.
func lastSuccessMetric(t *testing.T, addr, udid string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "backupd_last_success_timestamp_seconds{") || !strings.Contains(line, `udid="`+udid+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v, true
	}
	return 0, false
}
