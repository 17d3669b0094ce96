//go:build windows

package daemon

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/windows"
)

// connRefused: nothing listens on the socket (a stale one). Windows
// answers a connect to a dead AF_UNIX socket with WSAECONNREFUSED, which
// is not syscall.ECONNREFUSED there.
func connRefused(err error) bool {
	return errors.Is(err, windows.WSAECONNREFUSED) || errors.Is(err, syscall.ECONNREFUSED)
}

// listenUnix listens on a unix socket at path; Windows has no umask, and
// the state directory's ACL guards the socket.
func listenUnix(path string) (net.Listener, error) { return net.Listen("unix", path) }
