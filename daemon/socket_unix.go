//go:build !windows

package daemon

import (
	"errors"
	"syscall"
)

// connRefused: nothing listens on the socket (a stale one).
func connRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
