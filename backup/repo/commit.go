package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/backupd/backupd/cause"
)

// journal is commit.json: what a commit intends, written before the first
// rename so that recovery can finish it. Paths are relative to the backup
// directory, slash-separated, so the journal is independent of where the
// disk is mounted.
type journal struct {
	Format int       `json:"format"`
	UDID   string    `json:"udid"`
	Time   time.Time `json:"time"` // when the new backup was completed
	// HasOld: there was a latest backup to retire.
	HasOld bool `json:"has_old"`
	// Dest is where the retired latest goes: .backupd/versions/<UDID>/<time>,
	// or .backupd/trash/... when it is not kept (DeleteOld).
	Dest      string `json:"dest,omitempty"`
	DeleteOld bool   `json:"delete_old,omitempty"`
	// NewID and OldID identify the staged tree and the latest one, where
	// the platform has identities; the atomic exchange is only used when
	// it does.
	NewID *fileID `json:"new_id,omitempty"`
	OldID *fileID `json:"old_id,omitempty"`
}

const journalFormat = 1

// Commit verifies the staged backup and makes it the latest: see the
// package documentation for the steps and why a crash at any instant
// leaves either the old or the new backup as the latest. The previous
// latest becomes a version (unless versions are not kept) and retention is
// applied.
//
// A backup that does not verify gives a cause.VerifyFailed error; the
// staging is then still open and the caller aborts it (or may fix it and
// commit again). An error after the commit point means the new backup is
// committed on disk but the last renames or clean-up did not finish; the
// next Begin for this device, or Recover, finishes them.
func (s *Staging) Commit(ctx context.Context) (Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stagingOpen {
		return Version{}, fmt.Errorf("repo: commit %s: %w", s.udid, ErrFinished)
	}
	r := s.r
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return Version{}, fmt.Errorf("repo: commit %s: %w", s.udid, ErrClosed)
	}
	v, committed, err := r.commit(ctx, s.udid)
	switch {
	case err == nil:
		s.state = stagingCommitted
		r.release(s)
		return v, nil
	case committed:
		s.state = stagingPending
		r.release(s)
		if !crashed(err) {
			r.keepLatestPresent(s.udid)
		}
	}
	return Version{}, err
}

// commit runs the steps; committed reports whether the commit point was
// passed (so the staging now belongs to recovery).
func (r *Repo) commit(ctx context.Context, udid string) (v Version, committed bool, err error) {
	tree := r.stagedTree(udid)
	fi, err := os.Lstat(tree)
	if err != nil || !fi.IsDir() {
		return v, false, cause.Errorf(cause.VerifyFailed, "repo: commit %s: the staging has no %s directory", udid, udid)
	}
	// The flush waits on the disk while verify reads Manifest.db and
	// stats every file: run side by side, the commit costs the longer of
	// the two rather than their sum (W1: 0.6 s of each).
	now := r.opts.Now().UTC().Truncate(time.Millisecond)
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	synced := make(chan error, 1)
	go func() { synced <- syncTree(tree, syncCtx.Err) }()
	err = r.seal(ctx, udid, tree, now)
	if err != nil {
		stopSync() // a tree that does not verify need not be durable
	}
	if serr := <-synced; err == nil && serr != nil {
		err = classify(fmt.Errorf("repo: commit %s: %w", udid, serr))
	}
	if err != nil {
		return v, false, err
	}
	// The root's new mode and times, which the flush may have missed.
	if err := syncDir(tree); err != nil {
		return v, false, classify(fmt.Errorf("repo: commit %s: %w", udid, err))
	}
	if err := syncDir(r.deviceRoot(udid)); err != nil {
		return v, false, classify(fmt.Errorf("repo: commit %s: %w", udid, err))
	}
	if err := r.step("synced"); err != nil {
		return v, false, err
	}

	j, err := r.plan(udid, now, fi)
	if err != nil {
		return v, false, classify(fmt.Errorf("repo: commit %s: %w", udid, err))
	}
	if err := r.writeJournal(j); err != nil {
		return v, false, classify(fmt.Errorf("repo: commit %s: journal: %w", udid, err))
	}
	if err := r.step("journaled"); err != nil {
		return v, true, err
	}

	if err := r.complete(ctx, j); err != nil {
		return v, true, err
	}
	// Not "time": the log line has its own, and JSON logs repeat no key.
	r.log.Info("backup committed", "udid", udid, "version_time", now, "retired_to", j.Dest)
	return Version{UDID: udid, Path: r.latestPath(udid), Time: now, Latest: true}, true, nil
}

// seal verifies the staged tree and marks it as ours: its root's mode is
// ours to set whatever the device did to it (backups are private), and
// its modification time records when the backup was completed (the
// version's name once it is retired).
func (r *Repo) seal(ctx context.Context, udid, tree string, now time.Time) error {
	if _, err := r.Verify(ctx, tree); err != nil {
		return fmt.Errorf("repo: commit %s: %w", udid, err)
	}
	if err := r.step("verified"); err != nil {
		return err
	}
	if err := os.Chmod(tree, 0o700); err != nil {
		return classify(fmt.Errorf("repo: commit %s: %w", udid, err))
	}
	if err := os.Chtimes(tree, now, now); err != nil {
		return classify(fmt.Errorf("repo: commit %s: %w", udid, err))
	}
	return nil
}

// plan decides where the current latest goes and records the identities.
func (r *Repo) plan(udid string, now time.Time, newInfo os.FileInfo) (*journal, error) {
	j := &journal{Format: journalFormat, UDID: udid, Time: now}
	if id, ok := idOf(newInfo); ok {
		j.NewID = &id
	}
	old, err := os.Lstat(r.latestPath(udid))
	switch {
	case isNotExist(err):
		return j, nil
	case err != nil:
		return nil, err
	case !old.IsDir():
		// Never replace something we do not understand.
		return nil, fmt.Errorf("%s is not a directory", r.latestPath(udid))
	}
	j.HasOld = true
	if id, ok := idOf(old); ok {
		j.OldID = &id
	}
	if !r.keepsVersions() {
		j.DeleteOld = true
		j.Dest = path.Join(".backupd", "trash", randomName(udid+".old."))
		return j, nil
	}
	if err := mkdirPrivate(r.versionsDir(udid)); err != nil {
		return nil, err
	}
	if err := syncDir(r.versionsRoot()); err != nil {
		return nil, err
	}
	// The retired backup is named after the time it was completed: the
	// modification time Commit gave its root (or, for one another tool
	// made, about when that tool last changed it).
	name, err := r.freeVersionName(udid, old.ModTime().UTC())
	if err != nil {
		return nil, err
	}
	j.Dest = path.Join(".backupd", "versions", udid, name)
	return j, nil
}

// freeVersionName returns the name for a version completed at t that is
// not taken yet.
func (r *Repo) freeVersionName(udid string, t time.Time) (string, error) {
	base := t.Format(versionLayout)
	for n := 1; n < 1000; n++ {
		name := base
		if n > 1 {
			name += "-" + strconv.Itoa(n)
		}
		taken, err := exists(r.versionPath(udid, name))
		if err != nil {
			return "", err
		}
		if !taken {
			return name, nil
		}
	}
	return "", fmt.Errorf("too many versions named %s", base)
}

// writeJournal writes commit.json durably: a temporary file, fsynced,
// renamed into place, and the directory fsynced. Its appearance is the
// commit point.
func (r *Repo) writeJournal(j *journal) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	final := r.journalPath(j.UDID)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(final))
}

// readJournal reads and checks commit.json of udid's staging.
func (r *Repo) readJournal(udid string) (*journal, error) {
	b, err := os.ReadFile(r.journalPath(udid))
	if err != nil {
		return nil, err
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInconsistent, r.journalPath(udid), err)
	}
	if j.Format != journalFormat || j.UDID != udid {
		return nil, fmt.Errorf("%w: %s: format %d, UDID %q", ErrInconsistent, r.journalPath(udid), j.Format, j.UDID)
	}
	if j.HasOld {
		// The destination is one new name directly under versions/<UDID>
		// or trash: a damaged journal must not send a rename elsewhere.
		dir := path.Join(".backupd", "versions", udid)
		if j.DeleteOld {
			dir = path.Join(".backupd", "trash")
		}
		if path.Clean(j.Dest) != j.Dest || path.Dir(j.Dest) != dir || strings.ContainsAny(j.Dest, `\:`) {
			return nil, fmt.Errorf("%w: %s: destination %q", ErrInconsistent, r.journalPath(udid), j.Dest)
		}
	}
	return &j, nil
}

// state is where a commit stands, read from the disk.
type state int

const (
	stateStart     state = iota // latest = old (or none), staged = new
	stateSwapped                // latest = new, staged = old (after exchange)
	stateRetired                // no latest, staged = new, old at dest
	stateInstalled              // latest = new, nothing staged: renames done
)

// observe reads the state of a commit from the disk. With identities it
// tells the two trees apart; without them (Windows) the exchange is never
// used, so both names present can only mean the start.
func (r *Repo) observe(j *journal) (state, error) {
	latest, staged, dest := r.latestPath(j.UDID), r.stagedTree(j.UDID), r.destPath(j)
	lfi, lerr := os.Lstat(latest)
	sfi, serr := os.Lstat(staged)
	for _, e := range []error{lerr, serr} {
		if e != nil && !isNotExist(e) {
			return 0, e
		}
	}
	is := func(fi os.FileInfo, want *fileID) bool {
		if want == nil {
			return true
		}
		id, ok := idOf(fi)
		return ok && id == *want
	}
	inconsistent := func(what string) (state, error) {
		return 0, fmt.Errorf("%w: %s (latest %s: %v, staged %s: %v)", ErrInconsistent, what, latest, lerr, staged, serr)
	}
	switch {
	case lerr == nil && serr == nil:
		switch {
		case !j.HasOld:
			return inconsistent("a latest backup appeared that this commit did not put there")
		case j.NewID != nil && j.OldID != nil && is(lfi, j.NewID) && is(sfi, j.OldID):
			return stateSwapped, nil
		case is(lfi, j.OldID) && is(sfi, j.NewID):
			return stateStart, nil
		}
		return inconsistent("neither tree is the one the journal names")
	case lerr == nil:
		if !is(lfi, j.NewID) {
			return inconsistent("the latest backup is not the one being committed")
		}
		return stateInstalled, nil
	case serr == nil:
		if !is(sfi, j.NewID) {
			return inconsistent("the staged tree is not the one being committed")
		}
		if !j.HasOld {
			return stateStart, nil
		}
		return stateRetired, nil
	}
	// Neither name exists: no crash of ours leaves this. If the retired
	// backup is where the journal sent it, put it back: an old latest is
	// better than none.
	if dest != "" {
		if err := os.Rename(dest, latest); err == nil {
			_ = r.syncDirs(j)
			// The staging holds nothing worth keeping now; without it the
			// next Begin starts cleanly from the restored backup.
			_ = r.trash(r.container(j.UDID), j.UDID, nil)
			return 0, fmt.Errorf("%w: the backup being committed is gone; the previous one was put back as the latest", ErrInconsistent)
		}
	}
	return inconsistent("no backup left to make the latest")
}

// destPath is the absolute path of the journal's destination.
func (r *Repo) destPath(j *journal) string {
	if j.Dest == "" {
		return ""
	}
	return filepath.Join(r.dir, filepath.FromSlash(j.Dest))
}

// syncDirs fsyncs every directory a commit renames in.
func (r *Repo) syncDirs(j *journal) error {
	dirs := []string{r.dir, r.deviceRoot(j.UDID)}
	if d := r.destPath(j); d != "" {
		dirs = append(dirs, filepath.Dir(d))
	}
	var errs []error
	for _, d := range dirs {
		if err := syncDir(d); err != nil && !isNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// finish drives a journaled commit from whatever state the disk is in to
// stateInstalled. Commit and recovery run the same code, so recovery is
// exercised by every commit.
func (r *Repo) finish(j *journal) error {
	latest, staged, dest := r.latestPath(j.UDID), r.stagedTree(j.UDID), r.destPath(j)
	// Each pass moves one state forward; four passes cover the longest
	// path (start → retired → installed, or start → swapped → installed).
	for range 4 {
		st, err := r.observe(j)
		if err != nil {
			return err
		}
		var stepName string
		switch st {
		case stateInstalled:
			return nil
		case stateStart:
			if !j.HasOld {
				err, stepName = os.Rename(staged, latest), "installed"
				break
			}
			if r.canExchange(j) {
				err = exchange(staged, latest)
				if err == nil {
					stepName = "swapped"
					break
				}
				if !errors.Is(err, errNoExchange) {
					break
				}
				r.mu.Lock()
				r.noExchange = true
				r.mu.Unlock()
				r.log.Info("no atomic directory exchange here; committing with two renames and the journal", "err", err)
			}
			if err = mkdirPrivate(filepath.Dir(dest)); err == nil {
				err, stepName = os.Rename(latest, dest), "retired"
			}
		case stateSwapped:
			if err = mkdirPrivate(filepath.Dir(dest)); err == nil {
				err, stepName = os.Rename(staged, dest), "retired"
			}
		case stateRetired:
			err, stepName = os.Rename(staged, latest), "installed"
		}
		if err != nil {
			return err
		}
		if err := r.syncDirs(j); err != nil {
			return err
		}
		if err := r.step(stepName); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: the commit of %s made no progress", ErrInconsistent, j.UDID)
}

// canExchange: only with both identities (so recovery can tell the trees
// apart) and where the exchange has not already been refused.
func (r *Repo) canExchange(j *journal) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return j.NewID != nil && j.OldID != nil && !r.noExchange && !r.opts.faults.twoRenames()
}

// complete finishes a journaled commit: the renames, then the staging
// (journal included) removed, a retired latest that is not kept deleted,
// and retention. Once the renames are done the new backup is committed, so
// a failure in the clean-up after them is logged, not returned: trash and
// retention are taken care of by the next Recover or commit. A failpoint's
// crash still stops everything.
func (r *Repo) complete(ctx context.Context, j *journal) error {
	if err := r.finish(j); err != nil {
		if crashed(err) {
			return err
		}
		return classify(fmt.Errorf("repo: commit %s: %w", j.UDID, err))
	}
	cleanup := func(what string, err error) error {
		if crashed(err) {
			return err
		}
		if err != nil {
			r.log.Error("committed, but clean-up failed; the next start finishes it", "udid", j.UDID, "what", what, "err", err)
		}
		return nil
	}
	// One rename takes the journal and the emptied staging away together,
	// so a staging directory with no journal always means "never reached
	// the commit point".
	err := r.trash(r.container(j.UDID), j.UDID, nil)
	if err == nil {
		err = r.step("cleaned")
	}
	if err := cleanup("remove staging", err); err != nil {
		return err
	}
	if j.DeleteOld {
		err := os.RemoveAll(r.destPath(j))
		if err == nil {
			err = r.step("purged")
		}
		if err := cleanup("delete the previous backup", err); err != nil {
			return err
		}
	}
	return cleanup("retention", r.prune(ctx, j.UDID))
}

// keepLatestPresent is Commit's last resort after a real error past the
// commit point: if the two-rename path stopped between its renames, put
// the previous latest back so that the device still has a latest backup
// until recovery finishes the commit (from stateStart again).
func (r *Repo) keepLatestPresent(udid string) {
	j, err := r.readJournal(udid)
	if err != nil || !j.HasOld {
		return
	}
	if ok, _ := exists(r.latestPath(udid)); ok {
		return
	}
	if err := os.Rename(r.destPath(j), r.latestPath(udid)); err != nil {
		r.log.Error("the latest backup is missing until recovery finishes the commit", "udid", udid, "err", err)
		return
	}
	_ = r.syncDirs(j)
}

// prune applies retention: versions beyond KeepLast, oldest first, move to
// trash and are deleted, except the ones a restore has pinned.
func (r *Repo) prune(ctx context.Context, udid string) error {
	vs, err := r.Versions(udid)
	if err != nil {
		return err
	}
	keep := r.keepLast()
	for i := len(vs) - 1; i >= keep; i-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		trashed, err := r.trashVersion(vs[i])
		if err != nil {
			return err
		}
		if !trashed {
			// A restore or an extract reads it: the first retention
			// after it is done removes it.
			r.log.Info("kept an old version a restore or an extract is reading", "udid", udid, "version", vs[i].Name)
			continue
		}
		r.log.Info("removed an old version", "udid", udid, "version", vs[i].Name)
		if err := r.step("pruned"); err != nil {
			return err
		}
	}
	return nil
}

// Recovered is one device whose backup was interrupted by a crash or a
// stop of backupd.
type Recovered struct {
	UDID string
	// Completed is true when the interrupted backup had passed its commit
	// point and Recover made it the latest (Latest describes it). When
	// false the unfinished backup was discarded and the latest is what it
	// was before.
	Completed bool
	Latest    Version
}

// Recover runs at daemon start, before any Begin: for each staging area
// it finishes a commit that passed its commit point or discards an
// unfinished backup, then empties trash and applies retention. It reports
// every device that had an interrupted run. Stagings this Repo has open
// are left alone. A device whose state it cannot make sense of is
// reported in the error (wrapping ErrInconsistent) and left untouched; the
// others are still recovered.
func (r *Repo) Recover(ctx context.Context) ([]Recovered, error) {
	r.mu.Lock()
	if err := r.lockLocked(); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	active := make(map[string]bool, len(r.active))
	for u := range r.active {
		active[u] = true
	}
	r.mu.Unlock()

	var out []Recovered
	var errs []error
	entries, err := os.ReadDir(r.stagingRoot())
	if err != nil && !isNotExist(err) {
		return nil, classify(fmt.Errorf("repo: recover: %w", err))
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		name := e.Name()
		if active[name] || r.latestPinned(name) {
			continue
		}
		if ValidUDID(name) != nil {
			// Nothing of ours has such a name; .backupd is private, so
			// it goes.
			if err := r.trash(filepath.Join(r.stagingRoot(), name), "stray", nil); err != nil {
				errs = append(errs, classify(err))
			}
			continue
		}
		rec, skipped, err := r.recoverUnpinned(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("repo: recover %s: %w", name, err))
			continue
		}
		if !skipped {
			out = append(out, rec)
		}
	}
	if err := r.emptyTrash(); err != nil {
		errs = append(errs, classify(fmt.Errorf("repo: recover: empty trash: %w", err)))
	}
	devices, err := os.ReadDir(r.versionsRoot())
	if err != nil && !isNotExist(err) {
		errs = append(errs, classify(fmt.Errorf("repo: recover: %w", err)))
	}
	for _, d := range devices {
		if ValidUDID(d.Name()) != nil || active[d.Name()] {
			continue
		}
		if err := r.prune(ctx, d.Name()); err != nil {
			errs = append(errs, classify(fmt.Errorf("repo: recover: retention for %s: %w", d.Name(), err)))
		}
	}
	slices.SortFunc(out, func(a, b Recovered) int { return strings.Compare(a.UDID, b.UDID) })
	return out, errors.Join(errs...)
}

// recoverUnpinned is recoverOne under the exclusive lock of the device's
// latest, which may retire it; it skips a device whose latest another
// process has pinned (the next Begin or Recover finishes it).
func (r *Repo) recoverUnpinned(ctx context.Context, udid string) (Recovered, bool, error) {
	lock, err := r.tryLockPin(pinKey{udid, ""})
	if errors.Is(err, ErrLocked) {
		r.log.Warn("left an interrupted backup for later: its latest backup is being read", "udid", udid)
		return Recovered{}, true, nil
	}
	if err != nil {
		return Recovered{}, false, err
	}
	defer closeLock(lock)
	rec, err := r.recoverOne(ctx, udid)
	return rec, false, err
}

// recoverOne finishes or discards the staging of udid.
func (r *Repo) recoverOne(ctx context.Context, udid string) (Recovered, error) {
	rec := Recovered{UDID: udid}
	j, err := r.readJournal(udid)
	switch {
	case isNotExist(err):
		// Never reached the commit point: the latest was not touched.
		if err := r.trash(r.container(udid), udid, nil); err != nil {
			return rec, classify(err)
		}
		r.log.Warn("discarded an interrupted backup", "udid", udid)
		return rec, nil
	case err != nil:
		return rec, classify(err)
	}
	if err := r.complete(ctx, j); err != nil {
		return rec, err
	}
	r.log.Warn("finished the commit of an interrupted backup", "udid", udid, "version_time", j.Time)
	rec.Completed = true
	rec.Latest = Version{UDID: udid, Path: r.latestPath(udid), Time: j.Time, Latest: true}
	return rec, nil
}
