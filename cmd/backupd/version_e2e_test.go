package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EVersionMismatch: a command that finds a daemon of another
// version running (an upgrade whose old daemon still runs) says so, once,
// and still does its work; of the same version it says nothing.
func TestE2EVersionMismatch(t *testing.T) {
	e := newEnv(t, 1)
	start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config) // version "dev"
	waitFor(t, "the daemon", func() bool {
		_, code := e.status(t)
		return code == exitOK
	})
	old := version
	t.Cleanup(func() { version = old })
	for _, tt := range []struct {
		version string
		want    string // on stderr; "" for nothing
	}{
		{"dev", ""},
		{"2.0.0", "backupd: the running service is version dev, this command is 2.0.0: restart the service (backupd restart)"},
	} {
		version = tt.version
		var out, errb bytes.Buffer
		if code := run([]string{"devices", "--config", e.config}, &out, &errb); code != exitOK || !strings.Contains(out.String(), "connected over USB") {
			t.Fatalf("devices as %s: exit %d\n%s%s", tt.version, code, out.String(), errb.String())
		}
		switch {
		case tt.want == "" && errb.String() != "":
			t.Errorf("devices as %s: stderr %q, want nothing", tt.version, errb.String())
		case tt.want != "" && strings.Count(errb.String(), tt.want) != 1:
			t.Errorf("devices as %s: stderr %q, want %q once", tt.version, errb.String(), tt.want)
		}
	}
}
