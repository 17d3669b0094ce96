package repo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Pins across processes.
//
// A pin is also a lock on a file, .backupd/pins/<UDID>/<version name>
// (or .../latest for the latest backup), so that a pin taken by another
// process, such as `backupd extract` run while the service runs, holds
// against this Repo as one taken in it does:
//
//   - the pinner holds a shared lock on the file while it reads, and
//     takes it before it checks that the backup is still there;
//   - retention takes the exclusive lock, without waiting, before it
//     moves a version away, keeps the version when it cannot, and holds
//     the lock across the rename;
//   - Begin holds the exclusive lock of the device's latest from the
//     start of a backup to its commit or abort, so a pinned latest keeps
//     a backup from starting and a running backup keeps the latest from
//     being pinned; Recover takes it before it finishes an interrupted
//     commit.
//
// The kernel drops a lock when its process ends, so a killed extract
// never keeps a backup for good. A reader that cannot create the file
// (backup_dir mounted read-only, or another user's) reads without it:
// Pin.Unlocked says so.

// latestPinName is the lock file of a device's latest backup; no version
// has that name.
const latestPinName = "latest"

// pinLockWait is how long Pin waits for a lock retention or recovery
// holds for a moment.
const pinLockWait = 2 * time.Second

func (r *Repo) pinsRoot() string { return filepath.Join(r.meta(), "pins") }

func (r *Repo) pinLockPath(k pinKey) string {
	name := k.name
	if name == "" {
		name = latestPinName
	}
	return filepath.Join(r.pinsRoot(), k.udid, name)
}

// makePinDirs makes .backupd/pins/<UDID>.
func (r *Repo) makePinDirs(udid string) error {
	for _, d := range []string{r.meta(), r.pinsRoot(), filepath.Join(r.pinsRoot(), udid)} {
		if err := mkdirPrivate(d); err != nil {
			return err
		}
	}
	return nil
}

// lockPinShared takes k's shared lock, waiting up to pinLockWait while
// someone holds it exclusively (then ErrLocked). An error other than
// ErrLocked means the pin cannot be shared with other processes; with
// errLockUnsupported the returned closer is still to be closed.
func (r *Repo) lockPinShared(k pinKey) (io.Closer, error) {
	if err := r.makePinDirs(k.udid); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(pinLockWait)
	for {
		l, err := lockPinFile(r.pinLockPath(k), false)
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			return l, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tryLockPin takes k's exclusive lock without waiting: ErrLocked when a
// pin holds it. On a file system without locks it returns a closer and
// no error: there is nothing better to do there.
func (r *Repo) tryLockPin(k pinKey) (io.Closer, error) {
	if err := r.makePinDirs(k.udid); err != nil {
		return nil, classify(fmt.Errorf("repo: pin lock: %w", err))
	}
	l, err := lockPinFile(r.pinLockPath(k), true)
	switch {
	case errors.Is(err, errLockUnsupported):
		// Said once already by lockLocked, which meets the same file
		// system; r.mu is not taken here, as retention calls this under
		// the pins' mutex.
		r.log.Debug("pin lock unsupported", "err", err)
		return l, nil
	case errors.Is(err, ErrLocked):
		return nil, ErrLocked
	case err != nil:
		return nil, classify(fmt.Errorf("repo: pin lock: %w", err))
	}
	return l, nil
}

// removePinLock removes a removed version's lock file while its
// exclusive lock is held: a pinner waiting on the old file finds the
// version gone once it has the lock, one that comes later makes a new
// file and finds it gone too.
func (r *Repo) removePinLock(k pinKey) {
	if k.name != "" {
		_ = os.Remove(r.pinLockPath(k)) // best effort: a leftover is a few bytes
	}
}

// closeLock closes a lock that may be nil.
func closeLock(l io.Closer) {
	if l != nil {
		l.Close()
	}
}
