package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/sim/simtest"
)

// parseBytes reads humanBytes' output back.
func parseBytes(t *testing.T, s string) float64 {
	t.Helper()
	num, unit, _ := strings.Cut(s, " ")
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	mult := map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]
	if mult == 0 {
		t.Fatalf("%q: unknown unit", s)
	}
	return f * mult
}

// tmuxSession runs shell in a detached 120x30 tmux session on a private
// server, killed when the test ends, and returns a way to talk to it.
func tmuxSession(t *testing.T, tmux, dir, shell string) func(args ...string) (string, error) {
	t.Helper()
	sock := filepath.Join(dir, "tmux.sock")
	tm := func(args ...string) (string, error) {
		cmd := exec.Command(tmux, append([]string{"-S", sock}, args...)...)
		cmd.Env = append(os.Environ(), "TERM=xterm-256color")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { tm("kill-server") })
	if out, err := tm("new-session", "-d", "-x", "120", "-y", "30", shell); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	return tm
}

// slowPhone is a daemon whose phone had its plug-in backup and now
// sends about 1 MB/s: several seconds of progress for a 4 MiB backup.
func slowPhone(t *testing.T) (env, string) {
	t.Helper()
	e := newEnv(t, 1)
	start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	var udid string
	waitFor(t, "the plug-in backup", func() bool {
		rep, _ := e.status(t)
		if len(rep.Devices) == 1 && !rep.Devices[0].LastSuccess.IsZero() && rep.Devices[0].State != api.StateBackingUp {
			udid = rep.Devices[0].UDID
			return true
		}
		return false
	})
	e.ctl(t, "fault", udid, "slow-link=1000000")
	return e, udid
}

// reading is one distinct progress line seen on the screen.
type reading struct {
	line, screen string
	percent      int
	bytes        float64
}

// watchProgress captures the pane every 200 ms until the command prints
// EXIT=, and returns the distinct progress lines progress (groups:
// percent, amount) matched, in order, and the final screen. A progress
// line redrawn in place is on the screen once at a time.
func watchProgress(t *testing.T, tm func(args ...string) (string, error), progress *regexp.Regexp) ([]reading, string) {
	t.Helper()
	var seen []reading
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		screen, err := tm("capture-pane", "-p")
		if err != nil {
			t.Fatalf("tmux capture-pane: %v\n%s", err, screen)
		}
		if m := progress.FindAllStringSubmatch(screen, -1); len(m) > 0 {
			if len(m) > 1 {
				t.Errorf("%d progress lines on the screen, want 1 redrawn in place:\n%s", len(m), screen)
			}
			if len(seen) == 0 || seen[len(seen)-1].line != m[0][0] {
				p, _ := strconv.Atoi(m[0][1])
				seen = append(seen, reading{line: m[0][0], screen: screen, percent: p, bytes: parseBytes(t, m[0][2])})
			}
		}
		if strings.Contains(screen, "EXIT=") {
			t.Logf("progress seen: %q", lines(seen))
			return seen, screen
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the command did not end within 60s; progress seen %q", lines(seen))
	return nil, ""
}

func lines(rs []reading) []string {
	var l []string
	for _, r := range rs {
		l = append(l, r.line)
	}
	return l
}

// checkAdvanced: the progress line changed at least three times, never
// went back, and the bytes received grew.
func checkAdvanced(t *testing.T, seen []reading, final string) {
	t.Helper()
	if len(seen) < 3 {
		t.Errorf("the progress line changed %d times, want at least 3\nfinal screen:\n%s", len(seen), final)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].percent < seen[i-1].percent || seen[i].bytes < seen[i-1].bytes {
			t.Errorf("progress went back: %q", lines(seen))
		}
	}
	if len(seen) > 1 && seen[len(seen)-1].bytes <= seen[0].bytes {
		t.Errorf("the bytes received did not grow: %q", lines(seen))
	}
}

// TestTmuxBackupProgress runs `backupd backup --wait` on a terminal (a
// tmux pane) during a slow backup, captures the screen several times and
// checks that the progress line is redrawn in place as the backup goes,
// then gives way to the final line.
func TestTmuxBackupProgress(t *testing.T) {
	tmux := simtest.RequireTool(t, "tmux")
	e, _ := slowPhone(t)
	shell := fmt.Sprintf("%s backup --full --wait --config %s; echo EXIT=$?; sleep 120", filepath.Join(e.bin, "backupd"), e.config)
	tm := tmuxSession(t, tmux, e.dir, shell)

	seen, final := watchProgress(t, tm, regexp.MustCompile(`\[[#-]{20}\] +(\d+)%  ([0-9.]+ [KMG]?i?B)`))
	checkAdvanced(t, seen, final)
	if n := len(seen); n > 0 && !strings.Contains(seen[n/2].screen, "ETA ") && !strings.Contains(seen[n-1].screen, "ETA ") {
		t.Errorf("no ETA on the progress line:\n%s", seen[n-1].screen)
	}
	if !strings.Contains(final, "backup done") || !strings.Contains(final, "EXIT=0") {
		t.Errorf("the final screen lacks the end:\n%s", final)
	}
	finalLines := strings.Split(strings.TrimRight(final, "\n"), "\n")
	for i, l := range finalLines {
		if strings.Contains(l, "backup done") && i+1 < len(finalLines) && !strings.HasPrefix(finalLines[i+1], "EXIT=") {
			t.Errorf("the final line is not the last before the exit:\n%s", final)
		}
	}
}

// TestTmuxStatusLive runs `backupd status` on a terminal while a slow
// backup runs: the device's line carries a bar that is redrawn in place
// as the backup goes, and when the backup ends status leaves the final
// line on the screen and exits by itself.
func TestTmuxStatusLive(t *testing.T) {
	tmux := simtest.RequireTool(t, "tmux")
	e, _ := slowPhone(t)
	if _, stderr, code := cli(t, e.bin, "backup", "--full", "--config", e.config); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	waitFor(t, "the backup to start", func() bool {
		rep, _ := e.status(t)
		return len(rep.Devices) == 1 && rep.Devices[0].State == api.StateBackingUp
	})

	tm := tmuxSession(t, tmux, e.dir, fmt.Sprintf("%s status --config %s; echo EXIT=$?; sleep 120", filepath.Join(e.bin, "backupd"), e.config))
	bar := regexp.MustCompile(`backing up now\n +\[[#-]{20}\] +(\d+)%  ([0-9.]+ [KMG]?i?B)`)
	seen, final := watchProgress(t, tm, bar)
	checkAdvanced(t, seen, final)
	if bar.MatchString(final) || !strings.Contains(final, "last attempt") || !strings.Contains(final, "success") || !strings.Contains(final, "EXIT=0") {
		t.Errorf("the final screen does not show the ended backup and exit 0:\n%s", final)
	}
}
