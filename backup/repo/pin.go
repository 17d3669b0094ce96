package repo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Pins keep a backup where it is while a restore or an extract reads it.
//
// A pinned version is skipped by retention (it is pruned by the first
// retention after its last pin is released) and by nothing else, since
// nothing else ever moves or deletes a version. A pinned latest cannot be
// retired by a commit, because Begin refuses to start a backup of its
// device (ErrPinned, which is an ErrBusy) and Pin refuses a latest whose
// device has a backup in progress (ErrBusy): either the backup or the
// restore waits. Pins live in this Repo's memory and, so that a reader in
// another process (backupd extract) is kept safe from the service's Repo
// as well, in file locks (pinlock.go).

// ErrPinned: Begin for a device whose latest backup a restore or an
// extract is reading. errors.Is(err, ErrBusy) is true as well.
var ErrPinned error = pinnedError{}

type pinnedError struct{}

func (pinnedError) Error() string {
	return "the latest backup of this device is being read by a restore or an extract"
}
func (pinnedError) Is(target error) bool { return target == ErrBusy }

// ErrNoSuchVersion: Pin or Resolve named no backup that exists.
var ErrNoSuchVersion = errors.New("no such backup")

// LatestName is what Resolve and Pin take for the device's latest backup.
const LatestName = "latest"

// pinKey names a pinned backup: its device and its version name, or ""
// for the latest.
type pinKey struct{ udid, name string }

// pins counts the pins on each backup.
type pins struct {
	mu sync.Mutex
	n  map[pinKey]int
}

func (p *pins) count(k pinKey) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[k]
}

// Pin is a backup kept in place until Release.
type Pin struct {
	r    *Repo
	v    Version
	id   string
	key  pinKey
	once sync.Once
	// lock is the pin's shared file lock; unlocked says why there is
	// none.
	lock     io.Closer
	unlocked error
}

// Version is the pinned backup.
func (p *Pin) Version() Version { return p.v }

// Path is the pinned backup's directory (the one holding Status.plist).
func (p *Pin) Path() string { return p.v.Path }

// ID is the backup's name as Versions and VersionList give it, the one
// Resolve takes back.
func (p *Pin) ID() string { return p.id }

// Release lets retention and commits have the backup again. It may be
// called more than once.
func (p *Pin) Release() {
	p.once.Do(func() {
		closeLock(p.lock)
		p.r.pins.mu.Lock()
		defer p.r.pins.mu.Unlock()
		if p.r.pins.n[p.key]--; p.r.pins.n[p.key] <= 0 {
			delete(p.r.pins.n, p.key)
		}
	})
}

// Unlocked is nil when the pin holds against every process, and
// otherwise why it holds only in this Repo: its lock file could not be
// made (backup_dir read-only, or another user's) or locked. A backup
// pinned so may then be replaced or removed by the service meanwhile.
func (p *Pin) Unlocked() error { return p.unlocked }

// pinAttempts bounds how often Pin resolves again because the backup it
// named was replaced while it took the lock.
const pinAttempts = 3

// Pin resolves which (see Resolve) and keeps that backup in place until
// the returned Pin is released, against this Repo and, through a file
// lock, against a Repo in another process. A restore that first takes a safety
// backup of the same phone resolves "latest" to its name before the
// safety backup and pins that name after it: by then the backup it named
// has become a version. Pinning a latest fails with ErrBusy while a
// backup of its device is in progress.
func (r *Repo) Pin(udid, which string) (*Pin, error) {
	if err := ValidUDID(udid); err != nil {
		return nil, fmt.Errorf("repo: pin: %w", err)
	}
	for attempt := 1; ; attempt++ {
		v, _, err := r.Resolve(udid, which)
		if err != nil {
			return nil, err
		}
		k := keyOf(v)
		// The lock comes first, then the check that the backup is still
		// there (pinMemory resolves again).
		lock, lerr := r.lockPinShared(k)
		if errors.Is(lerr, ErrLocked) {
			if v.Latest {
				return nil, fmt.Errorf("repo: pin the latest backup of %s: %w", udid, ErrBusy)
			}
			return nil, fmt.Errorf("repo: pin %s of %s: retention is removing it: %w", v.Name, udid, ErrNoSuchVersion)
		}
		p, err := r.pinMemory(udid, which)
		if err != nil {
			closeLock(lock)
			return nil, err
		}
		if p.key == k {
			p.lock, p.unlocked = lock, lerr
			return p, nil
		}
		p.Release()
		closeLock(lock)
		if attempt == pinAttempts {
			return nil, fmt.Errorf("repo: pin %q of %s: the backups kept changing: %w", which, udid, ErrBusy)
		}
	}
}

// keyOf is the pin key of a kept backup.
func keyOf(v Version) pinKey {
	if v.Latest {
		return pinKey{v.UDID, ""}
	}
	return pinKey{v.UDID, v.Name}
}

// pinMemory is the pin in this Repo's memory.
func (r *Repo) pinMemory(udid, which string) (*Pin, error) {
	// r.mu orders a pin of the latest against Begin, the pins' own mutex
	// against retention.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	r.pins.mu.Lock()
	defer r.pins.mu.Unlock()
	v, id, err := r.resolve(udid, which)
	if err != nil {
		return nil, err
	}
	key := keyOf(v)
	if v.Latest {
		if r.active[udid] != nil {
			return nil, fmt.Errorf("repo: pin the latest backup of %s: %w", udid, ErrBusy)
		}
	}
	if r.pins.n == nil {
		r.pins.n = map[pinKey]int{}
	}
	r.pins.n[key]++
	return &Pin{r: r, v: v, id: id, key: key}, nil
}

// latestPinned reports whether a restore reads the device's latest.
func (r *Repo) latestPinned(udid string) bool { return r.pins.count(pinKey{udid, ""}) > 0 }

// Resolve names one kept backup of udid: "latest" (or ""), a name as
// VersionList gives it, or an RFC 3339 date or time, meaning the newest
// backup completed at or before it (a date alone means the end of that
// day, UTC). It returns the backup and its name.
func (r *Repo) Resolve(udid, which string) (Version, string, error) {
	if err := ValidUDID(udid); err != nil {
		return Version{}, "", fmt.Errorf("repo: resolve: %w", err)
	}
	return r.resolve(udid, which)
}

func (r *Repo) resolve(udid, which string) (Version, string, error) {
	all, err := r.kept(udid)
	if err != nil {
		return Version{}, "", err
	}
	if len(all) == 0 {
		return Version{}, "", fmt.Errorf("repo: %s has no backup: %w", udid, ErrNoSuchVersion)
	}
	which = strings.TrimSpace(which)
	if which == "" || which == LatestName {
		if !all[0].Latest {
			return Version{}, "", fmt.Errorf("repo: %s has no latest backup, only older versions: %w", udid, ErrNoSuchVersion)
		}
		return all[0], nameOf(all[0]), nil
	}
	for _, v := range all {
		if nameOf(v) == which {
			return v, which, nil
		}
	}
	at, ok := parseWhen(which)
	if !ok {
		return Version{}, "", fmt.Errorf("repo: %q is neither %q, a version's name nor an RFC 3339 date or time: %w", which, LatestName, ErrNoSuchVersion)
	}
	for _, v := range all { // newest first
		if !v.Time.After(at) {
			return v, nameOf(v), nil
		}
	}
	return Version{}, "", fmt.Errorf("repo: %s has no backup from %s or before: %w", udid, which, ErrNoSuchVersion)
}

// parseWhen reads an RFC 3339 time, or a date meaning the end of that
// day in UTC.
func parseWhen(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Add(24*time.Hour - time.Nanosecond), true
	}
	return time.Time{}, false
}

// nameOf is a backup's name: a version's directory name, or for the
// latest the name it will have once it is retired.
func nameOf(v Version) string {
	if v.Latest {
		return v.Time.UTC().Format(versionLayout)
	}
	return v.Name
}

// kept lists the latest (its Time is its root's modification time, which
// Commit set to when it was completed) and then the older versions,
// newest first.
func (r *Repo) kept(udid string) ([]Version, error) {
	var out []Version
	if dir, ok := r.Latest(udid); ok {
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, classify(fmt.Errorf("repo: %w", err))
		}
		out = append(out, Version{UDID: udid, Path: dir, Time: fi.ModTime().UTC().Truncate(time.Millisecond), Latest: true})
	}
	vs, err := r.Versions(udid)
	if err != nil {
		return nil, err
	}
	return append(out, vs...), nil
}

// trashVersion moves a version to trash and deletes it, unless it is
// pinned, here or by another process; it reports whether it did. The pin
// check and the rename happen under the pins' mutex and the version's
// exclusive file lock, so a Pin either finds the version in place (and it
// stays) or does not find it.
func (r *Repo) trashVersion(v Version) (bool, error) {
	if err := mkdirPrivate(r.trashRoot()); err != nil {
		return false, err
	}
	dst := filepath.Join(r.trashRoot(), randomName(v.UDID+".version."))
	k := keyOf(v)
	r.pins.mu.Lock()
	if r.pins.n[k] > 0 {
		r.pins.mu.Unlock()
		return false, nil
	}
	lock, err := r.tryLockPin(k)
	if err != nil {
		r.pins.mu.Unlock()
		if errors.Is(err, ErrLocked) {
			return false, nil
		}
		return false, err
	}
	err = os.Rename(v.Path, dst)
	if err == nil || isNotExist(err) {
		r.removePinLock(k)
	}
	closeLock(lock)
	r.pins.mu.Unlock()
	if err != nil {
		if isNotExist(err) {
			return true, nil
		}
		return false, err
	}
	if err := syncDir(filepath.Dir(v.Path)); err != nil {
		return true, err
	}
	return true, os.RemoveAll(dst)
}
