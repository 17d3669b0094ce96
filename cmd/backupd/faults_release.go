//go:build !failpoint

package main

import (
	"github.com/rs/zerolog"

	"github.com/backupd/backupd/daemon"
)

// injectFaults does nothing: a release build has no failpoints, and
// reads no environment variable for them (the failpoint build does, see
// failpoint.go).
func injectFaults(*daemon.Options, zerolog.Logger) error { return nil }
