//go:build unix

package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// streamOf returns f's "dev:ino", as systemd puts it in JOURNAL_STREAM.
func streamOf(t *testing.T, f *os.File) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// TestJournalPriorities: under systemd (JOURNAL_STREAM names the stream
// the log goes to) each JSON line starts with its syslog priority, which
// journald strips and keeps; otherwise, or when the log goes elsewhere,
// or in the console format, lines are unchanged.
func TestJournalPriorities(t *testing.T) {
	dir := t.TempDir()
	other, err := os.Create(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tests := []struct {
		name   string
		stream func(log *os.File) string
		format LogFormat
		prefix bool
	}{
		{"under systemd", func(log *os.File) string { return streamOf(t, log) }, LogJSON, true},
		{"no JOURNAL_STREAM", func(*os.File) string { return "" }, LogJSON, false},
		{"redirected elsewhere", func(*os.File) string { return streamOf(t, other) }, LogJSON, false},
		{"garbage JOURNAL_STREAM", func(*os.File) string { return "x:y" }, LogJSON, false},
		{"console under systemd", func(log *os.File) string { return streamOf(t, log) }, LogConsole, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			log, err := NewLogger(JournalPriorities(f, tt.stream(f)), tt.format, "debug")
			if err != nil {
				t.Fatal(err)
			}
			log.Debug().Msg("d")
			log.Info().Msg("i")
			log.Warn().Msg("w")
			log.Error().Msg("e")
			SlogLogger(log, "usbmux").Warn("through slog")
			out, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			want := []string{"<7>", "<6>", "<4>", "<3>", "<4>"}
			if len(lines) != len(want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
			}
			for i, l := range lines {
				has := strings.HasPrefix(l, want[i])
				if tt.prefix && (!has || !strings.HasPrefix(l[len(want[i]):], "{")) {
					t.Errorf("line %d: want %s then JSON: %s", i+1, want[i], l)
				}
				if !tt.prefix && strings.HasPrefix(l, "<") {
					t.Errorf("line %d has a priority prefix: %s", i+1, l)
				}
			}
		})
	}
}
