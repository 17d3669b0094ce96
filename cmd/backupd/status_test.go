package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/daemon/api"
)

func TestStatusLine(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.Local)
	udid := "00008030-001A2D3E0C38802E"
	failed := &api.Run{Start: now.Add(-time.Hour), Outcome: "failed", Cause: "disconnected"}
	fillCause(failed)
	tests := []struct {
		name string
		dev  deviceEntry
		want []string
		not  []string
	}{
		{"success", deviceEntry{Device: api.Device{UDID: udid, Name: "Anna's iPhone", LastSuccess: now.Add(-3 * time.Hour),
			LastAttempt: &api.Run{Start: now.Add(-3 * time.Hour), Outcome: "success"}}},
			[]string{"Anna's iPhone (00008030…)", "last backup 2026-11-24 09:00 (3 hours ago)", "last attempt 2026-11-24 09:00 success"}, []string{"OVERDUE"}},
		{"overdue failure", deviceEntry{Overdue: true, Device: api.Device{UDID: udid, LastSuccess: now.Add(-9 * 24 * time.Hour), LastAttempt: failed}},
			[]string{"iPhone (00008030…)", "(9 days ago) OVERDUE", "failed (disconnected): ", "Fix: Keep the iPhone connected"}, nil},
		{"never", deviceEntry{Overdue: true, Device: api.Device{UDID: udid}}, []string{"never backed up OVERDUE"}, nil},
		{"in progress", deviceEntry{Device: api.Device{UDID: udid, Connected: true, State: api.StateBackingUp,
			LastSuccess: now.Add(-30 * time.Minute), Progress: &api.Progress{Percent: 42.4, Bytes: 5 << 20, Files: 7, BytesPerSecond: 1 << 20, ETASeconds: 95}}},
			[]string{"(30 minutes ago)", "backing up now [########------------]  42%  5.0 MiB  7 files  1.0 MiB/s  ETA 1:35"}, []string{"last attempt"}},
		{"thinking", deviceEntry{Device: api.Device{UDID: udid, Connected: true, State: api.StateRestoring,
			Progress: &api.Progress{Percent: 3, Bytes: 5 << 20, Files: 7, ThinkingSince: now.Add(-4*time.Minute - 20*time.Second)}}},
			[]string{"restoring now [", "the iPhone is preparing its data (quiet for 4m; this is normal, keep it connected)"}, nil},
		{"sending", deviceEntry{Device: api.Device{UDID: udid, Connected: true, State: api.StateBackingUp,
			Progress: &api.Progress{Percent: 3, Bytes: 5 << 20, Files: 7}}},
			[]string{"backing up now ["}, []string{"preparing", "quiet"}},
		{"waiting", deviceEntry{Device: api.Device{UDID: udid, Connected: true, State: api.StateWaiting, Cause: "trust_pending",
			Summary: "s.", Fix: "tap Trust"}}, []string{"now waiting (trust_pending): s. Fix: tap Trust"}, nil},
		{"awaiting passcode", deviceEntry{Device: api.Device{UDID: udid, Name: "Anna's iPhone", Connected: true, State: api.StateAwaitingPasscode,
			Note: "enter your passcode on Anna's iPhone to start the backup", LastSuccess: now.Add(-time.Hour)}},
			[]string{"waiting: enter your passcode on Anna's iPhone to start the backup"}, []string{"backing up now", "awaiting_passcode"}},
		{"trend", deviceEntry{Device: api.Device{UDID: udid, LastAttempt: failed,
			Trend: &api.Trend{Cause: "disconnected", Count: 4, NextStep: "other_port_or_cable", Text: "disconnected 4 times in a row: try another USB port"}}},
			[]string{"failed (disconnected)", "; disconnected 4 times in a row: try another USB port"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := statusLine(tt.dev, now)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q does not contain %q", got, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(got, w) {
					t.Errorf("%q contains %q", got, w)
				}
			}
		})
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Second: "just now", time.Minute: "1 minute ago", 59 * time.Minute: "59 minutes ago",
		time.Hour: "1 hour ago", 47 * time.Hour: "47 hours ago", 72 * time.Hour: "3 days ago",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestStatusWhileHistoryIsCreated: the empty history.db a starting daemon
// has created but not yet initialised reads as no history, not an error.
func TestStatusWhileHistoryIsCreated(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"no file", func(*testing.T, string) {}},
		{"empty file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "history.db"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultFileConfig()
			cfg.StateDir = t.TempDir()
			tt.setup(t, cfg.StateDir)
			rep, err := gatherStatus(cfg, time.Now())
			if err != nil {
				t.Fatalf("gatherStatus: %v", err)
			}
			if rep.DaemonRunning || len(rep.Devices) != 0 {
				t.Errorf("report = %+v, want no daemon and no devices", rep)
			}
		})
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		s     string
		width int
		want  string
	}{
		{"short", 80, "short"},
		{"exactly9!", 10, "exactly9!"},
		{"exactly10!", 10, "exactly1…"},
		{"a much longer line", 8, "a much…"},
		{"Añña's iPhone", 6, "Añña…"},
		{"tiny", 1, "tiny"},
	}
	for _, tt := range tests {
		if got := clip(tt.s, tt.width); got != tt.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tt.s, tt.width, got, tt.want)
		}
	}
}

// TestLiveScreen: each redraw goes back up exactly the lines drawn
// before, so a block that shrinks or grows is redrawn in place.
func TestLiveScreen(t *testing.T) {
	var b strings.Builder
	s := &liveScreen{w: &b, width: 10}
	s.draw([]string{"one", "two", "a line longer than ten"})
	if got, want := b.String(), "\r\033[Kone\n\r\033[Ktwo\n\r\033[Ka line l…\n\033[J"; got != want {
		t.Errorf("first draw %q, want %q", got, want)
	}
	b.Reset()
	s.draw([]string{"three"})
	if got, want := b.String(), "\033[3A\r\033[Kthree\n\033[J"; got != want {
		t.Errorf("second draw %q, want %q", got, want)
	}
	b.Reset()
	s.draw([]string{"x", "y"})
	if !strings.HasPrefix(b.String(), "\033[1A") {
		t.Errorf("third draw %q does not go back up 1 line", b.String())
	}
}

func TestOverdue(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	week := 7 * 24 * time.Hour
	tests := []struct {
		name string
		d    api.Device
		want bool
	}{
		{"backed up yesterday", api.Device{LastSuccess: now.Add(-24 * time.Hour), FirstSeen: now.Add(-30 * 24 * time.Hour)}, false},
		{"backed up 8 days ago", api.Device{LastSuccess: now.Add(-8 * 24 * time.Hour)}, true},
		{"new phone, first backup under way", api.Device{FirstSeen: now.Add(-time.Minute)}, false},
		{"seen 8 days ago, never backed up", api.Device{FirstSeen: now.Add(-8 * 24 * time.Hour)}, true},
		{"nothing known", api.Device{}, false},
	}
	for _, tt := range tests {
		if got := overdue(tt.d, now, week); got != tt.want {
			t.Errorf("%s: overdue = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestStatusLineRestore: a restore under way shows its bar, and a
// restore as the last attempt says it was one and from which backup.
func TestStatusLineRestore(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.Local)
	udid := "00008030-001A2D3E0C38802E"
	failed := &api.Run{Start: now.Add(-time.Hour), Outcome: "failed", Cause: "find_my_enabled", Kind: api.KindRestore,
		Source: "00008110-000A11112222801E", Version: "2026-11-20T08-00-00.000Z"}
	fillCause(failed)
	restoring := deviceEntry{Device: api.Device{UDID: udid, Connected: true, State: api.StateRestoring, LastAttempt: failed,
		Progress: &api.Progress{Percent: 50, Bytes: 1 << 20, Files: 3}}}
	if got := statusLine(restoring, now); !strings.Contains(got, "restoring now [##########----------]  50%") || strings.Contains(got, "last restore") {
		t.Errorf("restoring: %q", got)
	}
	ended := deviceEntry{Device: api.Device{UDID: udid, LastAttempt: failed}}
	got := statusLine(ended, now)
	for _, w := range []string{"last restore 2026-11-24 11:00 failed (from 2026-11-20T08-00-00.000Z of 00008110…)", "(find_my_enabled)", "Fix: On the iPhone, turn off"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q does not contain %q", got, w)
		}
	}
	if line := historyLine(*failed); !strings.Contains(line, "failed restore from 2026-11-20T08-00-00.000Z of 00008110…") {
		t.Errorf("history line %q", line)
	}
}
