package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		stdout     string // substring expected on stdout ("" = must be empty)
		stderr     string // substring expected on stderr ("" = must be empty)
		stdoutFull bool   // stdout must equal, not contain
	}{
		{args: []string{"version"}, code: 0, stdout: "backupd dev\n", stdoutFull: true},
		{args: []string{"help"}, code: 0, stdout: "  doctor "},
		{args: nil, code: 2, stderr: "Usage: backupd COMMAND"},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"verify", "a", "b"}, code: 2, stderr: "one UDID at most"},
		{args: []string{"verify", "ABC", "--all"}, code: 2, stderr: "a UDID or --all, not both"},
		{args: []string{"verify", "../etc"}, code: 2, stderr: "invalid UDID"},
		{args: []string{"verify", "-h"}, code: 0, stderr: "1 when any does not"},
		{args: []string{"encryption"}, code: 2, stderr: "say on or off"},
		{args: []string{"encryption", "maybe"}, code: 2, stderr: "say on or off"},
		{args: []string{"encryption", "on", "a", "b"}, code: 2, stderr: "say on or off"},
		{args: []string{"completion"}, code: 2, stderr: "name one shell"},
		{args: []string{"completion", "tcsh"}, code: 2, stderr: `"tcsh": want bash, zsh or fish`},
		{args: []string{"completion", "-h"}, code: 0, stderr: "fish/completions/backupd.fish"},
		{args: []string{"--help"}, code: 0, stdout: "5  bad configuration"},
		{args: []string{"status", "--bogus"}, code: 2, stderr: "flag provided but not defined: -bogus"},
		{args: []string{"history", "--outcome", "great"}, code: 2, stderr: `--outcome "great"`},
		{args: []string{"history", "--limit", "0"}, code: 2, stderr: "--limit must be more than 0"},
		{args: []string{"backup", "a", "b"}, code: 2, stderr: "one UDID at most"},
		{args: []string{"run", "--log-format", "xml"}, code: 2, stderr: `--log-format "xml"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			check := func(name, got, want string, full bool) {
				switch {
				case want == "" && got != "":
					t.Errorf("%s = %q, want empty", name, got)
				case full && got != want:
					t.Errorf("%s = %q, want %q", name, got, want)
				case !strings.Contains(got, want):
					t.Errorf("%s = %q, want it to contain %q", name, got, want)
				}
			}
			check("stdout", out.String(), tt.stdout, tt.stdoutFull)
			check("stderr", errb.String(), tt.stderr, false)
		})
	}
}

// TestServiceLog: the log of a daemon under the Windows service manager
// goes to state_dir/backupd.log, appended to and private to its owner.
func TestServiceLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	for _, line := range []string{"first\n", "second\n"} {
		f, err := openServiceLog(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	path := filepath.Join(dir, serviceLogName)
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "first\nsecond\n" {
		t.Fatalf("log = %q, %v; want both lines", b, err)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("log mode %v, want 0600", fi.Mode().Perm())
		}
	}
	if _, logs := where(dir); runtime.GOOS == "windows" && logs != path {
		t.Errorf("where says the log is %s, want %s", logs, path)
	}
}
