package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestConfirmRestore: a restore goes ahead only when the person types
// the phone's name on a terminal, or with --yes; without a terminal it
// refuses with a usage error naming --yes.
func TestConfirmRestore(t *testing.T) {
	tests := []struct {
		name  string
		yes   bool
		tty   bool
		typed string
		code  int // 0: go ahead
	}{
		{"typed the name", false, true, "Anna's iPhone\n", 0},
		{"typed it with spaces around", false, true, "  Anna's iPhone  \n", 0},
		{"typed another name", false, true, "Anna\n", exitError},
		{"typed nothing", false, true, "", exitError},
		{"no terminal", false, false, "Anna's iPhone\n", exitUsage},
		{"--yes", true, false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prompt strings.Builder
			in := restoreInput{stdin: strings.NewReader(tt.typed), tty: tt.tty, stderr: &prompt}
			err := confirmRestore(context.Background(), in, tt.yes, "Anna's iPhone")
			var ce *cmdError
			switch {
			case tt.code == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.code != 0 && (!errors.As(err, &ce) || ce.code != tt.code):
				t.Fatalf("error %v, want exit %d", err, tt.code)
			}
			if tt.code == exitUsage && !strings.Contains(err.Error(), "--yes") {
				t.Errorf("the refusal does not name --yes: %v", err)
			}
			if asked := strings.Contains(prompt.String(), "type its name (Anna's iPhone)"); asked != (tt.tty && !tt.yes) {
				t.Errorf("prompt %q", prompt.String())
			}
		})
	}
}

// TestRestoreHelp: --help says what each flag leaves out and which way
// backupd maps RestorePreserveSettings.
func TestRestoreHelp(t *testing.T) {
	var errb strings.Builder
	if code := run([]string{"restore", "-h"}, io.Discard, &errb); code != exitOK {
		t.Fatalf("restore -h: exit %d", code)
	}
	for _, want := range []string{"--skip-apps         the apps", "--no-reboot         the restart", "--no-safety-backup  the safety backup",
		"RestorePreserveSettings = false", "pymobiledevice3", "--yes", "Exit status"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("restore -h does not say %q", want)
		}
	}
}
