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
	"github.com/backupd/backupd/sim"
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

// TestTmuxBackupProgress runs `backupd backup --wait` on a terminal (a
// tmux pane) during a slow backup, captures the screen several times and
// checks that the progress line is redrawn in place as the backup goes,
// then gives way to the final line.
func TestTmuxBackupProgress(t *testing.T) {
	tmux := sim.RequireTool(t, "tmux")
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
	// About 6 MiB at 1 MB/s: several seconds of progress.
	e.ctl(t, "fault", udid, "slow-link=1000000")

	shell := fmt.Sprintf("%s backup --full --wait --config %s; echo EXIT=$?; sleep 120", filepath.Join(e.bin, "backupd"), e.config)
	tm := tmuxSession(t, tmux, e.dir, shell)

	progress := regexp.MustCompile(`\[[#-]{20}\] +(\d+)%  ([0-9.]+ [KMG]?i?B)`)
	var percents []int
	var lines []string // distinct progress readings, in order
	var amounts []float64
	var screens []string
	var final string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		screen, err := tm("capture-pane", "-p")
		if err != nil {
			t.Fatalf("tmux capture-pane: %v\n%s", err, screen)
		}
		if m := progress.FindAllStringSubmatch(screen, -1); len(m) > 0 {
			// Redrawn in place: one progress line on the screen at a
			// time.
			if len(m) > 1 {
				t.Errorf("%d progress lines on the screen, want 1:\n%s", len(m), screen)
			}
			p, _ := strconv.Atoi(m[0][1])
			if len(lines) == 0 || lines[len(lines)-1] != m[0][0] {
				lines = append(lines, m[0][0])
				percents = append(percents, p)
				amounts = append(amounts, parseBytes(t, m[0][2]))
				screens = append(screens, screen)
			}
		}
		if strings.Contains(screen, "EXIT=") {
			final = screen
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if final == "" {
		t.Fatalf("backup --wait did not end within 60s; progress seen %v", percents)
	}
	t.Logf("progress seen: %q", lines)
	if len(lines) < 3 {
		t.Errorf("the progress line changed %d times, want at least 3\nfinal screen:\n%s", len(lines), final)
	}
	for i := 1; i < len(lines); i++ {
		if percents[i] < percents[i-1] || amounts[i] < amounts[i-1] {
			t.Errorf("progress went back: %q", lines)
		}
	}
	if len(amounts) > 0 && amounts[len(amounts)-1] <= amounts[0] {
		t.Errorf("the bytes received did not grow: %q", lines)
	}
	if len(screens) > 0 && !strings.Contains(screens[len(screens)/2], "ETA ") && !strings.Contains(screens[len(screens)-1], "ETA ") {
		t.Errorf("no ETA on the progress line:\n%s", screens[len(screens)-1])
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
	tmux := sim.RequireTool(t, "tmux")
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
	if _, stderr, code := cli(t, e.bin, "backup", "--full", "--config", e.config); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	waitFor(t, "the backup to start", func() bool {
		rep, _ := e.status(t)
		return len(rep.Devices) == 1 && rep.Devices[0].State == api.StateBackingUp
	})

	tm := tmuxSession(t, tmux, e.dir, fmt.Sprintf("%s status --config %s; echo EXIT=$?; sleep 120", filepath.Join(e.bin, "backupd"), e.config))
	bar := regexp.MustCompile(`backing up now\n +\[[#-]{20}\] +(\d+)%  ([0-9.]+ [KMG]?i?B)`)
	var readings []string
	var amounts []float64
	var final string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		screen, err := tm("capture-pane", "-p")
		if err != nil {
			t.Fatalf("tmux capture-pane: %v\n%s", err, screen)
		}
		if m := bar.FindAllStringSubmatch(screen, -1); len(m) > 0 {
			if len(m) > 1 {
				t.Errorf("%d status lines with a bar on the screen, want 1 redrawn in place:\n%s", len(m), screen)
			}
			if len(readings) == 0 || readings[len(readings)-1] != m[0][0] {
				readings = append(readings, m[0][0])
				amounts = append(amounts, parseBytes(t, m[0][2]))
			}
		}
		if strings.Contains(screen, "EXIT=") {
			final = screen
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if final == "" {
		t.Fatalf("status did not end with the backup within 60s; readings %q", readings)
	}
	t.Logf("status readings: %q", readings)
	if len(readings) < 3 {
		t.Errorf("the status line changed %d times, want at least 3\nfinal screen:\n%s", len(readings), final)
	}
	for i := 1; i < len(amounts); i++ {
		if amounts[i] < amounts[i-1] {
			t.Errorf("progress went back: %q", readings)
		}
	}
	if len(amounts) > 1 && amounts[len(amounts)-1] <= amounts[0] {
		t.Errorf("the bytes received did not grow: %q", readings)
	}
	if bar.MatchString(final) || !strings.Contains(final, "last attempt") || !strings.Contains(final, "success") || !strings.Contains(final, "EXIT=0") {
		t.Errorf("the final screen does not show the ended backup and exit 0:\n%s", final)
	}
}
