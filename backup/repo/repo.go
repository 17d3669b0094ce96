package repo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/backupd/backupd/cause"
)

// CloneMode says how Begin seeds a staging area from the latest backup.
type CloneMode int

const (
	// CloneAuto clones each file by reflink where the file system has one,
	// else by hard link, else by a full copy (said once through the logger
	// and Options.Notice).
	CloneAuto CloneMode = iota
	// CloneCopy never hard links: reflink where available, else a full
	// copy, so the staging shares no inode with the latest backup.
	CloneCopy
	// CloneNone starts every backup empty (the device sends everything)
	// and keeps no versions: the previous latest is deleted once the new
	// one is in place. For file systems without hard links where a full
	// copy per backup costs too much space.
	CloneNone
)

func (m CloneMode) String() string {
	switch m {
	case CloneAuto:
		return "auto"
	case CloneCopy:
		return "copy"
	case CloneNone:
		return "none"
	}
	return "CloneMode(" + strconv.Itoa(int(m)) + ")"
}

// DefaultKeepLast is the number of older versions kept when
// Options.KeepLast is 0.
const DefaultKeepLast = 3

// Options configure a Repo. The zero value is usable.
type Options struct {
	// KeepLast is how many older versions of each device's backup are kept
	// besides the latest: 0 means DefaultKeepLast, a negative number none.
	KeepLast int
	// Clone says how a new backup is seeded from the latest one.
	Clone CloneMode
	// Logger receives what the Repo does; nil discards it.
	Logger *slog.Logger
	// Notice, when set, receives the messages a person should see once,
	// such as "this file system has no hard links, so each backup is a full
	// copy". Each is said once per Repo.
	Notice func(message string)
	// Now returns the current time; nil means time.Now. It stamps
	// completed backups.
	Now func() time.Time
	// VerifyTimeout bounds one Verify (the one at commit too); 0 means
	// DefaultVerifyTimeout.
	VerifyTimeout time.Duration

	// faults holds the failpoints of a build with the failpoint tag
	// (WithFailpoints); it is empty in a release build.
	faults faults
}

// Errors callers can test for with errors.Is.
var (
	// ErrBusy: Begin for a device that already has a backup in progress.
	ErrBusy = errors.New("a backup of this device is already in progress")
	// ErrLocked: another Repo (another backupd) is changing this backup
	// directory.
	ErrLocked = errors.New("backup directory is in use by another backupd")
	// ErrInvalidUDID: a UDID that is not safe to use as a directory name.
	ErrInvalidUDID = errors.New("invalid UDID")
	// ErrClosed: the Repo was closed.
	ErrClosed = errors.New("repo is closed")
	// ErrFinished: Commit on a staging that was already committed or
	// aborted.
	ErrFinished = errors.New("staging already committed or aborted")
	// ErrInconsistent: recovery found a state no crash of ours leaves; it
	// touched nothing so that a person can look.
	ErrInconsistent = errors.New("backup directory is in a state recovery does not know")
)

// Repo is one backup directory. Its methods are safe for concurrent use;
// each device has at most one Staging at a time.
type Repo struct {
	dir  string // absolute
	opts Options
	log  *slog.Logger

	mu         sync.Mutex
	active     map[string]*Staging
	lock       io.Closer // nil until Begin or Recover first needs it
	closed     bool
	noLinks    bool // link(2) failed as unsupported: copy from now on
	noExchange bool // the atomic swap is unsupported here: two renames
	said       map[string]bool
	// pins keep the backups restores read in place (pin.go).
	pins pins
}

// Open returns the Repo for backupDir, which must exist: a missing one is
// more likely an unmounted disk than a wish to write backups onto the disk
// below the mount point. Open neither writes nor locks anything; Begin and
// Recover do.
func Open(backupDir string, opts Options) (*Repo, error) {
	if backupDir == "" {
		return nil, errors.New("repo: no backup directory given")
	}
	abs, err := filepath.Abs(backupDir)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, cause.New(cause.HostNotWritable, fmt.Errorf("repo: backup directory %s does not exist (is its disk mounted?): %w", abs, err))
	case err != nil:
		return nil, classify(fmt.Errorf("repo: %w", err))
	case !fi.IsDir():
		return nil, cause.New(cause.HostNotWritable, fmt.Errorf("repo: backup directory %s is not a directory", abs))
	}
	switch {
	case opts.Clone < CloneAuto || opts.Clone > CloneNone:
		return nil, fmt.Errorf("repo: unknown clone mode %d", int(opts.Clone))
	case opts.KeepLast == 0:
		opts.KeepLast = DefaultKeepLast
	}
	if opts.VerifyTimeout <= 0 {
		opts.VerifyTimeout = DefaultVerifyTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Repo{
		dir:    abs,
		opts:   opts,
		log:    log.With("backup_dir", abs),
		active: map[string]*Staging{},
		said:   map[string]bool{},
	}, nil
}

// Dir returns the backup directory, absolute.
func (r *Repo) Dir() string { return r.dir }

// Close releases the lock on the backup directory and every staging's lock
// on its latest. A Staging still open stays on disk as it is; the next
// Recover or Begin discards it.
func (r *Repo) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	// A closed Repo holds no locks, as a process that ended holds none:
	// an open staging's lock on its latest would otherwise keep a later
	// Repo from recovering or pinning that device.
	for _, s := range r.active {
		closeLock(s.latestLock)
		s.latestLock = nil
	}
	if r.lock != nil {
		return r.lock.Close()
	}
	return nil
}

// Paths inside the backup directory.
func (r *Repo) meta() string                  { return filepath.Join(r.dir, ".backupd") }
func (r *Repo) stagingRoot() string           { return filepath.Join(r.meta(), "staging") }
func (r *Repo) versionsRoot() string          { return filepath.Join(r.meta(), "versions") }
func (r *Repo) trashRoot() string             { return filepath.Join(r.meta(), "trash") }
func (r *Repo) latestPath(udid string) string { return filepath.Join(r.dir, udid) }
func (r *Repo) container(udid string) string  { return filepath.Join(r.stagingRoot(), udid) }
func (r *Repo) deviceRoot(udid string) string { return filepath.Join(r.container(udid), "root") }
func (r *Repo) stagedTree(udid string) string { return filepath.Join(r.deviceRoot(udid), udid) }
func (r *Repo) journalPath(udid string) string {
	return filepath.Join(r.container(udid), "commit.json")
}
func (r *Repo) versionsDir(udid string) string    { return filepath.Join(r.versionsRoot(), udid) }
func (r *Repo) versionPath(udid, n string) string { return filepath.Join(r.versionsDir(udid), n) }

// lockLocked makes .backupd and takes the directory lock, once. r.mu is
// held.
func (r *Repo) lockLocked() error {
	if r.closed {
		return ErrClosed
	}
	if r.lock != nil {
		return nil
	}
	for _, d := range []string{r.meta(), r.stagingRoot(), r.versionsRoot(), r.trashRoot()} {
		if err := mkdirPrivate(d); err != nil {
			return classify(fmt.Errorf("repo: %w", err))
		}
	}
	path := filepath.Join(r.meta(), "lock")
	l, err := lockFile(path)
	switch {
	case errors.Is(err, errLockUnsupported):
		// A file system without locks (some network shares): go on, as
		// the daemon's own single-instance lock still covers the usual
		// case, but say so.
		r.sayLocked("nolock", fmt.Sprintf("the file system of %s cannot lock files, so backupd cannot stop two programs from changing it at once: %v", r.dir, err))
	case errors.Is(err, ErrLocked):
		return fmt.Errorf("repo: %s: %w", r.dir, err)
	case err != nil:
		return classify(fmt.Errorf("repo: lock %s: %w", path, err))
	}
	r.lock = l
	return nil
}

// sayLocked logs msg as a warning and passes it to Options.Notice, once per
// key per Repo. r.mu is held.
func (r *Repo) sayLocked(key, msg string) {
	if r.said[key] {
		return
	}
	r.said[key] = true
	r.log.Warn(msg)
	if r.opts.Notice != nil {
		r.opts.Notice(msg)
	}
}

// Latest returns the directory of the device's latest completed backup.
func (r *Repo) Latest(udid string) (dir string, ok bool) {
	if ValidUDID(udid) != nil {
		return "", false
	}
	p := r.latestPath(udid)
	fi, err := os.Lstat(p)
	if err != nil || !fi.IsDir() {
		return "", false
	}
	return p, true
}

// Version is one completed backup of a device.
type Version struct {
	UDID string
	// Path is the backup's directory (the one holding Status.plist).
	Path string
	// Time is when the backup was completed, UTC, to the millisecond.
	Time time.Time
	// Name is the directory's name under versions/<UDID>/; empty for the
	// latest.
	Name string
	// Latest is true for <backup_dir>/<UDID>.
	Latest bool
}

// versionLayout names version directories: sortable, UTC, no colons.
const versionLayout = "2006-01-02T15-04-05.000Z"

// parseVersionName reads "<time>" or "<time>-<n>" (n ≥ 2).
func parseVersionName(name string) (time.Time, int, bool) {
	base, seq := name, 1
	if i := strings.LastIndexByte(name, 'Z'); i >= 0 && i < len(name)-1 {
		base = name[:i+1]
		n, err := strconv.Atoi(strings.TrimPrefix(name[i+1:], "-"))
		if err != nil || n < 2 || name[i+1] != '-' || strconv.Itoa(n) != name[i+2:] {
			return time.Time{}, 0, false
		}
		seq = n
	}
	t, err := time.Parse(versionLayout, base)
	if err != nil || t.Format(versionLayout) != base {
		return time.Time{}, 0, false
	}
	return t, seq, true
}

// Versions returns the device's older completed backups, newest first;
// the latest is not among them (see Latest). Directories whose names are
// not version names are ignored and never removed.
func (r *Repo) Versions(udid string) ([]Version, error) {
	if err := ValidUDID(udid); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(r.versionsDir(udid))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(fmt.Errorf("repo: versions: %w", err))
	}
	type sortable struct {
		v   Version
		seq int
	}
	var vs []sortable
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		t, seq, ok := parseVersionName(e.Name())
		if !ok {
			continue
		}
		vs = append(vs, sortable{Version{UDID: udid, Path: r.versionPath(udid, e.Name()), Time: t, Name: e.Name()}, seq})
	}
	sort.Slice(vs, func(i, j int) bool {
		if !vs[i].v.Time.Equal(vs[j].v.Time) {
			return vs[i].v.Time.After(vs[j].v.Time)
		}
		return vs[i].seq > vs[j].seq
	})
	out := make([]Version, len(vs))
	for i := range vs {
		out[i] = vs[i].v
	}
	return out, nil
}

// keepLast is the number of older versions to keep.
func (r *Repo) keepLast() int { return max(r.opts.KeepLast, 0) }

// keepsVersions reports whether a retired latest becomes a version.
func (r *Repo) keepsVersions() bool { return r.opts.Clone != CloneNone && r.opts.KeepLast > 0 }

// KeepsVersions reports whether a commit keeps the backup it replaces as
// a version; without, a safety backup before a restore would delete the
// latest backup it replaces.
func (r *Repo) KeepsVersions() bool { return r.keepsVersions() }
