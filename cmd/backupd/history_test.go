package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/store"
)

// TestHistoryPages: --page walks the history newest first, --limit runs
// a page, without a daemon (from the store) as with one (same cursor).
func TestHistoryPages(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "history.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	for i := range 5 {
		if _, err := st.RecordSkip(store.Run{UDID: "00008030-001A2D3E0C38802E", Trigger: store.TriggerPlugIn,
			Start: t0.Add(time.Duration(i) * time.Hour), Cause: cause.BatteryLow, Note: "run " + string(rune('1'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config.toml")
	backups := filepath.Join(dir, "backups")
	if err := os.Mkdir(backups, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, config, "state_dir = \""+dir+"\"\nbackup_dir = \""+backups+"\"\n")

	tests := []struct {
		page  string
		notes []string
		more  bool
	}{
		{"1", []string{"run 5", "run 4"}, true},
		{"2", []string{"run 3", "run 2"}, true},
		{"3", []string{"run 1"}, false},
		{"4", nil, false},
	}
	for _, tt := range tests {
		t.Run("page "+tt.page, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run([]string{"history", "--config", config, "--limit", "2", "--page", tt.page, "--json"}, &out, &errb); code != exitOK {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			var runs []api.Run
			if err := json.Unmarshal(out.Bytes(), &runs); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			var notes []string
			for _, r := range runs {
				notes = append(notes, r.Note)
			}
			if strings.Join(notes, ",") != strings.Join(tt.notes, ",") {
				t.Errorf("runs %q, want %q", notes, tt.notes)
			}
			out.Reset()
			errb.Reset()
			run([]string{"history", "--config", config, "--limit", "2", "--page", tt.page}, &out, &errb)
			if got := strings.Contains(errb.String(), "older runs: --page"); got != tt.more {
				t.Errorf("says older runs: %v, want %v:\n%s", got, tt.more, errb.String())
			}
			if n := strings.Count(out.String(), "\n"); n != max(len(tt.notes), 1) {
				t.Errorf("%d lines on stdout, want a run a line:\n%s", n, out.String())
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run([]string{"history", "--config", config, "--page", "0"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "--page must be 1 or more") {
		t.Errorf("--page 0: exit %d, %q", code, errb.String())
	}
}
