//go:build !windows

package daemon

import (
	"errors"
	"net"
	"syscall"
)

// connRefused: nothing listens on the socket (a stale one).
func connRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// listenUnix listens on a new unix socket at path that nobody but the
// owner can connect to until listenSocket gives it its mode: bind creates
// the file with the process umask, and under a umask of 0 it would be
// 0777 for a moment. The umask belongs to the whole process, so another
// goroutine creating a file meanwhile gets a stricter mode, never a
// looser one.
func listenUnix(path string) (net.Listener, error) {
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}
