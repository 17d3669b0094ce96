package main

import (
	"runtime/debug"
	"testing"
)

// TestMemoryDefaults: backupd run sets GOGC and GOMEMLIMIT only where
// the user set neither.
func TestMemoryDefaults(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, tt := range []struct {
		name      string
		env       map[string]string
		gogc      int
		memLimit  int64
		wantNotes int
	}{
		{"neither set", nil, daemonGOGC, daemonGOMEMLIMIT, 2},
		{"GOGC set", map[string]string{"GOGC": "200"}, 100, daemonGOMEMLIMIT, 1},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, daemonGOGC, 1 << 62, 1},
		{"both set", map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, 100, 1 << 62, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// What the runtime had before: 100 and no limit here.
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(1 << 62)
			set := memoryDefaults(func(k string) string { return tt.env[k] })
			if got := debug.SetGCPercent(100); got != tt.gogc {
				t.Errorf("GOGC %d, want %d", got, tt.gogc)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.memLimit {
				t.Errorf("GOMEMLIMIT %d, want %d", got, tt.memLimit)
			}
			if len(set) != tt.wantNotes {
				t.Errorf("reported %v", set)
			}
		})
	}
}
