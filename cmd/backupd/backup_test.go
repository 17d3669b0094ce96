package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/daemon/api"
)

func TestProgressLine(t *testing.T) {
	tests := []struct {
		p    api.Progress
		want []string
		not  []string
	}{
		{api.Progress{Percent: 0, Bytes: 0}, []string{"[--------------------]   0%", "0 B", "0 files"}, []string{"ETA", "/s"}},
		{api.Progress{Percent: 50, Bytes: 3 << 20, Files: 7, BytesPerSecond: 1 << 20, ETASeconds: 75},
			[]string{"[##########----------]  50%", "3.0 MiB", "7 files", "1.0 MiB/s", "ETA 1:15"}, nil},
		{api.Progress{Percent: 100, ETASeconds: 0}, []string{"[####################] 100%"}, []string{"ETA"}},
		{api.Progress{Percent: 140, ETASeconds: 4000}, []string{"[####################] 100%", "ETA 1:06:40"}, nil},
	}
	for _, tt := range tests {
		got := progressLine("Anna's iPhone", "00008110-000A11112222801E", &tt.p)
		if !strings.HasPrefix(got, "Anna's iPhone (00008110…) [") {
			t.Errorf("progressLine(%+v) = %q: no name first", tt.p, got)
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("progressLine(%+v) = %q, want %q in it", tt.p, got, w)
			}
		}
		for _, w := range tt.not {
			if strings.Contains(got, w) {
				t.Errorf("progressLine(%+v) = %q, want no %q", tt.p, got, w)
			}
		}
	}
	if got := etaString(59*time.Second + 600*time.Millisecond); got != "1:00" {
		t.Errorf("etaString(59.6s) = %q", got)
	}
}

// simUDIDs lists the simulated phones' UDIDs.
func simUDIDs(t *testing.T, e env) []string {
	t.Helper()
	var out []string
	for line := range strings.SplitSeq(e.ctl(t, "list"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] != "ok" {
			out = append(out, f[0])
		}
	}
	return out
}

// TestE2EBackupRefused: a manual backup the daemon refuses (the device
// is excluded by the configuration, or not connected, or no device is)
// exits 4 with the reason and a fix, like one that was skipped.
func TestE2EBackupRefused(t *testing.T) {
	e := newEnv(t, 2)
	udids := simUDIDs(t, e)
	if len(udids) != 2 {
		t.Fatalf("the simulator lists %q", udids)
	}
	denied, ok := udids[0], udids[1]
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.config, strings.Replace(string(cfg), "[policy]\n", "[policy]\ndeny = [\""+denied+"\"]\n", 1))
	start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	waitFor(t, "the allowed phone's plug-in backup", func() bool {
		rep, _ := e.status(t)
		for _, d := range rep.Devices {
			if d.UDID == ok && !d.LastSuccess.IsZero() {
				return true
			}
		}
		return false
	})

	out, errOut, code := cli(t, e.bin, "backup", denied, "--wait", "--config", e.config)
	if code != exitFailed || !strings.Contains(out, "no backup: ") || !strings.Contains(out, "excludes") || !strings.Contains(out, "Fix: change the configuration") {
		t.Errorf("backup of a denied phone: exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitFailed, out, errOut)
	}

	e.ctl(t, "unplug", ok)
	waitFor(t, "the unplugged phone", func() bool {
		rep, _ := e.status(t)
		for _, d := range rep.Devices {
			if d.UDID == ok {
				return !d.Connected
			}
		}
		return false
	})
	out, errOut, code = cli(t, e.bin, "backup", ok, "--wait", "--config", e.config)
	if code != exitFailed || !strings.Contains(out, "not connected (disconnected)") || !strings.Contains(out, "Fix: plug it in") {
		t.Errorf("backup of an unplugged phone: exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitFailed, out, errOut)
	}
	e.ctl(t, "unplug", denied)
	waitFor(t, "no phone connected", func() bool {
		rep, _ := e.status(t)
		for _, d := range rep.Devices {
			if d.Connected {
				return false
			}
		}
		return true
	})
	out, errOut, code = cli(t, e.bin, "backup", "--config", e.config)
	if code != exitFailed || !strings.Contains(out, "no iPhone is connected") || !strings.Contains(out, "Fix: ") {
		t.Errorf("backup with no phone connected: exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitFailed, out, errOut)
	}
}
