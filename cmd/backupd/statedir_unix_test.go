//go:build unix

package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrivateStateDir(t *testing.T) {
	tests := []struct {
		mode, want fs.FileMode
		tightened  bool
	}{
		{0o750, 0o750, false},
		{0o700, 0o700, false},
		{0o770, 0o750, true},
		{0o755, 0o750, true}, // readable by all: names and UDIDs (issue #16)
		{0o711, 0o710, true},
		{0o777, 0o750, true},
		{0o1777, 0o750, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			mode := tt.mode.Perm()
			if tt.mode&0o1000 != 0 {
				mode |= fs.ModeSticky
			}
			if err := os.Chmod(dir, mode); err != nil {
				t.Fatal(err)
			}
			tightened, err := privateStateDir(dir)
			if err != nil || tightened != tt.tightened {
				t.Fatalf("privateStateDir = %v, %v; want %v, nil", tightened, err, tt.tightened)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.want {
				t.Errorf("mode %04o, want %04o", got, tt.want)
			}
		})
	}
}

// TestPrivateStateDirOfAnother: a folder others can write that belongs
// to someone else is refused, with what to do, and left as it is.
func TestPrivateStateDirOfAnother(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run as root: the test gives a folder to another user")
		}
		t.Skip("not root: the test gives a folder to another user")
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := privateStateDir(dir)
	if err == nil || !strings.Contains(err.Error(), "uid 65534") || !strings.Contains(err.Error(), "chmod go-w "+dir) {
		t.Fatalf("privateStateDir = %v, want a refusal naming the owner and the fix", err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o777 {
		t.Errorf("a folder of another user was changed to %04o", fi.Mode().Perm())
	}
}
