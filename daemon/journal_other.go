//go:build !unix

package daemon

import "io"

// isStream: journald is Linux's.
func isStream(io.Writer, string) bool { return false }
