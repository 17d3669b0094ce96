package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// maxSocketPath is the longest unix socket path every platform takes
// (sun_path is 104 bytes on macOS, 108 on Linux, with the NUL).
const maxSocketPath = 103

// socketMode lets the owner and the group use the API: the CLI run by a
// member of the daemon's group, not by anyone on the machine (the API
// starts backups and names the owner's phones).
const socketMode = 0o660

// listenSocket listens on the unix socket at path with mode 0660.
//
// A socket file left at path is removed only when nobody answers on it:
// a daemon killed with -9 leaves its socket behind, and that must not
// stop the next start; a running daemon's socket must never be taken
// from it.
func listenSocket(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("API socket %s: the path is %d bytes, more than the %d a unix socket may have; choose a shorter state_dir", path, len(path), maxSocketPath)
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("API socket %s: %w", path, err)
	case fi.Mode()&fs.ModeSocket == 0:
		return nil, fmt.Errorf("API socket %s: the path exists and is not a socket; move it away", path)
	default:
		c, derr := net.DialTimeout("unix", path, time.Second)
		if derr == nil {
			c.Close()
			return nil, fmt.Errorf("%w: another process answers on %s", ErrAlreadyRunning, path)
		}
		if !connRefused(derr) {
			// Not plainly stale (no permission, say): leave it to a person.
			return nil, fmt.Errorf("API socket %s is there and cannot be checked: %w", path, derr)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove stale API socket %s: %w", path, err)
		}
	}
	ln, err := listenUnix(path) // socket_unix.go: 0600 from the start
	if err != nil {
		return nil, fmt.Errorf("API socket %s: %w", path, err)
	}
	if err := os.Chmod(path, socketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("API socket %s: %w", path, err)
	}
	return ln, nil
}
