package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultTimeout is how long Open waits for another process to let go of
// the database. The daemon holds it for as long as it runs, so waiting
// longer rarely helps; the CLI wants a quick answer.
const DefaultTimeout = time.Second

// fileMode is the mode of a new database: it names the owner's phones.
const fileMode = 0o600

// Errors. Each error about the file as a whole names the file and wraps
// one of the first four.
var (
	// ErrCorrupt: the file is not a readable history (not bbolt, damaged,
	// truncated, or missing its buckets). It was left as it is.
	ErrCorrupt = errors.New("history database is corrupt")
	// ErrInUse: another process holds the database (the daemon, usually).
	ErrInUse = errors.New("history database is in use by another process")
	// ErrNewerSchema: the file was written by a newer backupd.
	ErrNewerSchema = errors.New("history database is from a newer backupd")
	// ErrOlderSchema: the file needs an upgrade that a read-only open
	// cannot make.
	ErrOlderSchema = errors.New("history database needs an upgrade")

	// ErrReadOnly: a write to a store opened with ReadOnly.
	ErrReadOnly = errors.New("history database is open read-only")
	// ErrNotFound: no run with that id, or no device with that UDID.
	ErrNotFound = errors.New("not found")
	// ErrNotRunning: FinishRun on a run that has already ended (found
	// interrupted at start-up, say).
	ErrNotRunning = errors.New("run is not running")
	// ErrInvalid: a run, device or retention that cannot be stored or
	// applied as given: a bug in the caller.
	ErrInvalid = errors.New("invalid history entry")
	// ErrBadCursor: a History cursor this store did not make.
	ErrBadCursor = errors.New("bad history cursor")
)

// fileError is an error about the database file: its text names the file
// and says what to do; it wraps a sentinel above and the error beneath.
type fileError struct {
	kind error
	err  error
	msg  string
}

func (e *fileError) Error() string   { return e.msg }
func (e *fileError) Unwrap() []error { return []error{e.kind, e.err} }

func corruptError(path string, err error) error {
	return &fileError{ErrCorrupt, err, fmt.Sprintf(
		"history database %s is corrupt: %v; it was left as it is — move it aside to start a new history", path, err)}
}

func inUseError(path string, waited time.Duration, err error) error {
	return &fileError{ErrInUse, err, fmt.Sprintf(
		"history database %s is in use by another process (is backupd already running?); waited %v for it", path, waited)}
}

// Options tune Open.
type Options struct {
	// ReadOnly opens the database for reading only, as the CLI does when
	// no daemon runs. Several read-only opens can share the file; none
	// can while a process has it open for writing.
	ReadOnly bool
	// Timeout bounds the wait for another process to release the file.
	// Zero or less means DefaultTimeout.
	Timeout time.Duration
}

// Store is an open history database. It is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	path     string
	readOnly bool
}

// Open opens the history database at path, creating it (mode 0600) when
// it does not exist unless opts.ReadOnly is set. The directory must exist.
//
// A file that is there but is not a readable history is reported with
// ErrCorrupt and never written to. A database with an older schema is
// upgraded in one transaction, after a copy of it is saved beside it as
// <path>.schema-<version>.bak; read-only, it is ErrOlderSchema. A newer
// schema is ErrNewerSchema. A file held by another process is ErrInUse
// after opts.Timeout.
func Open(path string, opts Options) (*Store, error) {
	return openSchema(path, opts, currentSchema())
}

func openSchema(path string, opts Options, sc schema) (*Store, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// A writer takes the lock twice (see below); both waits together
	// stay within timeout.
	deadline := time.Now().Add(timeout)
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && opts.ReadOnly:
		return nil, fmt.Errorf("no history database at %s (backupd has not run yet?): %w", path, err)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("history database %s: %w", path, err)
	case err == nil && info.IsDir():
		return nil, fmt.Errorf("history database %s is a directory", path)
	case err == nil && info.Size() == 0 && opts.ReadOnly:
		// bbolt would try to write a new database into it. An empty file
		// holds no history, so this is "no history yet".
		return nil, fmt.Errorf("history database %s is empty (backupd has not finished creating it?): %w", path, fs.ErrNotExist)
	}
	existing := err == nil && info.Size() > 0

	if opts.ReadOnly {
		s, version, err := inspect(path, timeout)
		if err != nil {
			return nil, err
		}
		if err := sc.readable(path, version); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}

	// Look at an existing file read-only first: if it is not a history we
	// can use, we say so without having opened it for writing, and bbolt
	// never touches a page past a truncated end (a read-write open loads
	// the freelist, which may lie there; reading it would be a fault).
	version := 0
	if existing {
		s, v, err := inspect(path, timeout)
		if err != nil {
			return nil, err
		}
		s.Close()
		if v > sc.version {
			return nil, newerError(path, v, sc.version)
		}
		version = v
	}

	// bbolt waits forever on a zero timeout; a tiny one is one attempt.
	db, err := openBolt(path, false, max(time.Until(deadline), time.Millisecond))
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path}
	if err := s.prepare(sc, version); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openBolt opens the bbolt file and turns its errors into ours.
func openBolt(path string, readOnly bool, timeout time.Duration) (*bolt.DB, error) {
	start := time.Now()
	db, err := bolt.Open(path, fileMode, &bolt.Options{ReadOnly: readOnly, Timeout: timeout})
	if err == nil {
		return db, nil
	}
	var pathErr *fs.PathError
	var errno syscall.Errno
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, inUseError(path, time.Since(start).Round(time.Millisecond), err)
	case errors.As(err, &pathErr), errors.As(err, &errno):
		// The system refused (permissions, no such directory, out of
		// memory for the map): nothing says the file is bad.
		return nil, fmt.Errorf("cannot open history database %s: %w", path, err)
	default:
		// Invalid meta pages, a bad checksum, a file too small to hold
		// them, another bbolt version.
		return nil, corruptError(path, err)
	}
}

// inspect opens path read-only and checks what can be checked cheaply:
// the file holds every page its meta page counts, and it has a schema
// version. It returns the open store and the version (0 for a bbolt file
// with no buckets at all).
func inspect(path string, timeout time.Duration) (*Store, int, error) {
	db, err := openBolt(path, true, timeout)
	if err != nil {
		return nil, 0, err
	}
	s := &Store{db: db, path: path, readOnly: true}
	version := 0
	err = s.view(func(tx *bolt.Tx) error {
		info, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("history database %s: %w", path, err)
		}
		if info.Size() < tx.Size() {
			return corruptError(path, fmt.Errorf("the file is %d bytes but its pages end at %d: it was truncated", info.Size(), tx.Size()))
		}
		version, err = readVersion(tx)
		if err != nil {
			return corruptError(path, err)
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, 0, err
	}
	return s, version, nil
}

// Path returns the file the store is in.
func (s *Store) Path() string { return s.path }

// Close closes the database, waiting for transactions in progress.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close history database %s: %w", s.path, err)
	}
	return nil
}

// view runs fn in a read transaction; see guard.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	return s.guard(func() error { return s.db.View(fn) })
}

// update runs fn in a write transaction, committed when fn returns nil.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	if s.readOnly {
		return fmt.Errorf("history database %s: %w", s.path, ErrReadOnly)
	}
	return s.guard(func() error { return s.db.Update(fn) })
}

// guard runs fn and turns a panic into an error. bbolt reads pages
// through a memory map and trusts what it finds: a damaged page makes it
// panic, or read past the map (a fault, which SetPanicOnFault turns into a
// panic). A damaged history must not stop the daemon, which can still back
// up without it. bbolt rolls the transaction back as the panic unwinds.
func (s *Store) guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = corruptError(s.path, fmt.Errorf("reading it failed: %v", p))
		}
	}()
	return fn()
}

// Check verifies the whole database, as `bbolt check` does: every page
// reachable once and only once, nothing lost. It also checks backupd's own
// invariants: every record decodes, and the indexes and the devices'
// pointers agree with the runs. It reads everything, so it takes time on a
// large history (see the benchmarks); the errors wrap ErrCorrupt.
func (s *Store) Check() error {
	check := func(tx *bolt.Tx) error {
		if err := checkPages(tx); err != nil {
			return corruptError(s.path, err)
		}
		if err := checkRecords(tx); err != nil {
			return corruptError(s.path, err)
		}
		return nil
	}
	if s.readOnly {
		// No writer can run: a read-only open shares the file only with
		// other readers.
		return s.view(check)
	}
	// bbolt's check is only safe beside writers when it runs in a write
	// transaction; this one is rolled back, as it changes nothing.
	return s.guard(func() error {
		tx, err := s.db.Begin(true)
		if err != nil {
			return fmt.Errorf("check history database %s: %w", s.path, err)
		}
		defer func() { _ = tx.Rollback() }()
		return check(tx)
	})
}

// maxCheckErrors bounds how many problems Check reports; a badly damaged
// file has thousands.
const maxCheckErrors = 20

func checkPages(tx *bolt.Tx) error {
	var errs []error
	more := 0
	for err := range tx.Check() {
		if len(errs) < maxCheckErrors {
			errs = append(errs, err)
		} else {
			more++
		}
	}
	if more > 0 {
		errs = append(errs, fmt.Errorf("and %d more problems", more))
	}
	return errors.Join(errs...)
}
