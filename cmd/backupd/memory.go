package main

import (
	"runtime/debug"
)

// The daemon's memory: most of a backup's working set is fixed (upload
// buffers, the open directories), so the collector can run more often
// than Go's default for little CPU, which keeps the peak RSS near what
// the work needs (W1 end to end: anonymous memory at its peak 14.5 MiB
// with Go's defaults, 11-12 MiB with these). The soft limit bounds the
// heap of a very large phone's backup. Each setting applies only when
// the user did not set its environment variable; the README says so.
const (
	daemonGOGC       = 50
	daemonGOMEMLIMIT = 48 << 20
)

// memoryDefaults applies the daemon's garbage-collector settings where
// getenv shows none, and returns what it set, for the log.
func memoryDefaults(getenv func(string) string) map[string]any {
	set := map[string]any{}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGOGC)
		set["gogc"] = daemonGOGC
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(daemonGOMEMLIMIT)
		set["gomemlimit"] = daemonGOMEMLIMIT
	}
	return set
}
