package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// Staging is one backup in progress. The engine writes under Dir(); the
// device's paths ("<UDID>/Status.plist", "<UDID>/Snapshot/...") are
// relative to it, so the clone of the latest backup is at
// filepath.Join(Dir(), UDID).
type Staging struct {
	r     *Repo
	udid  string
	stats CloneStats
	// latestLock is the exclusive lock on the latest's pin file, held
	// from Begin to the end, so no other process pins a latest this
	// backup will retire (pinlock.go).
	latestLock io.Closer

	mu    sync.Mutex
	state stagingState
}

type stagingState int

const (
	stagingOpen stagingState = iota
	stagingCommitted
	stagingAborted
	// stagingPending: Commit failed after its commit point; the staging
	// belongs to recovery (the next Begin or Recover finishes it).
	stagingPending
)

// Begin starts a backup of udid: it clones the latest backup (if any, and
// unless Options.Clone is CloneNone) into a fresh staging area. Only one
// staging per device exists at a time: a second Begin fails with ErrBusy
// until the first is committed or aborted. A staging left by a crash is
// finished (if it had passed its commit point) or discarded first.
//
// Clone errors are classified: a full disk gives cause.HostDiskFull. On
// any error nothing is left in staging and the latest is untouched.
func (r *Repo) Begin(ctx context.Context, udid string) (*Staging, error) {
	if err := ValidUDID(udid); err != nil {
		return nil, fmt.Errorf("repo: begin: %w", err)
	}
	r.mu.Lock()
	if err := r.lockLocked(); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	if r.active[udid] != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("repo: begin %s: %w", udid, ErrBusy)
	}
	if r.latestPinned(udid) {
		r.mu.Unlock()
		return nil, fmt.Errorf("repo: begin %s: %w", udid, ErrPinned)
	}
	s := &Staging{r: r, udid: udid}
	r.active[udid] = s
	r.mu.Unlock()

	ok := false
	defer func() {
		if !ok {
			r.release(s)
		}
	}()
	lock, err := r.tryLockPin(pinKey{udid, ""})
	if errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("repo: begin %s: %w", udid, ErrPinned)
	} else if err != nil {
		return nil, fmt.Errorf("repo: begin %s: %w", udid, err)
	}
	s.latestLock = lock
	if leftover, err := exists(r.container(udid)); err != nil {
		return nil, classify(fmt.Errorf("repo: begin %s: %w", udid, err))
	} else if leftover {
		rec, err := r.recoverOne(ctx, udid)
		if err != nil {
			return nil, fmt.Errorf("repo: begin %s: an interrupted backup is in the way: %w", udid, err)
		}
		r.log.Warn("finished an interrupted backup before starting a new one", "udid", udid, "completed", rec.Completed)
	}
	stats, err := r.prepare(ctx, udid)
	if err != nil {
		if rerr := r.trash(r.container(udid), udid, nil); rerr != nil {
			r.log.Error("cannot remove a staging area that failed to start", "udid", udid, "err", rerr)
		}
		return nil, classify(fmt.Errorf("repo: begin %s: %w", udid, err))
	}
	s.stats = stats
	ok = true
	r.log.Info("staging ready", "udid", udid, "files", stats.Files, "linked", stats.Linked,
		"reflinked", stats.Reflinked, "copied", stats.Copied)
	return s, nil
}

// prepare makes the staging directories and the clone.
func (r *Repo) prepare(ctx context.Context, udid string) (CloneStats, error) {
	stats := CloneStats{Mode: r.opts.Clone}
	for _, d := range []string{r.container(udid), r.deviceRoot(udid)} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return stats, err
		}
	}
	latest, ok := r.Latest(udid)
	if !ok || r.opts.Clone == CloneNone {
		return stats, os.Mkdir(r.stagedTree(udid), 0o700)
	}
	return r.cloneTree(ctx, latest, r.stagedTree(udid))
}

// release frees the device's staging slot.
func (r *Repo) release(s *Staging) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active[s.udid] == s {
		delete(r.active, s.udid)
	}
	closeLock(s.latestLock)
	s.latestLock = nil
}

// Dir is the root the device's paths are relative to.
func (s *Staging) Dir() string { return s.r.deviceRoot(s.udid) }

// UDID is the device this staging is for.
func (s *Staging) UDID() string { return s.udid }

// CloneStats says how Begin seeded this staging.
func (s *Staging) CloneStats() CloneStats { return s.stats }

// Abort discards the staging; the latest backup is untouched. It is safe
// to call after Commit (then it does nothing), so `defer s.Abort()` right
// after Begin is the intended use. If Commit failed after its commit point
// Abort leaves the staging for recovery, which finishes that commit.
func (s *Staging) Abort() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stagingOpen {
		return nil
	}
	s.state = stagingAborted
	defer s.r.release(s)
	if err := s.r.trash(s.r.container(s.udid), s.udid, s.r.step); err != nil {
		if crashed(err) {
			return err
		}
		return classify(fmt.Errorf("repo: abort %s: %w", s.udid, err))
	}
	return nil
}

// isNotExist is errors.Is(err, fs.ErrNotExist), shorter.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
