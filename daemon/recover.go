package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/store"
)

// This file is start-up recovery: what a crash or a kill left in staging
// and in the history.

// recover runs before anything else writes: it finishes or discards the
// backups a crash or a kill left in staging, and records the runs left
// running as interrupted. A run whose commit had passed its commit point
// is complete, so it is recorded as the success it was. Every run it ends
// is published like any other.
func (d *Daemon) recover(ctx context.Context) error {
	now := d.now()
	completed, err := d.recoverStaging(ctx)
	if err != nil {
		return err
	}
	if err := d.recoverCommitted(completed, now); err != nil {
		return fmt.Errorf("start-up recovery: %w", err)
	}
	ended, err := d.store.MarkInterrupted(now)
	if err != nil {
		return fmt.Errorf("start-up recovery: %w", err)
	}
	for _, r := range ended {
		d.log.Warn().Str("udid", r.UDID).Uint64("run", uint64(r.ID)).Time("started", r.Start).Msg("a backup was interrupted when backupd last stopped")
		d.publishRun(r)
	}
	if ret := d.retention(); ret != (store.Retention{}) {
		if n, err := d.store.Prune(now, ret); err != nil {
			d.log.Warn().Err(err).Msg("prune history")
		} else if n > 0 {
			d.log.Info().Int("runs", n).Msg("pruned old history")
		}
	}
	return nil
}

// recoverStaging finishes or discards what backup_dir's staging holds and
// returns, by device, the backups whose commit it completed.
func (d *Daemon) recoverStaging(ctx context.Context) (map[string]repo.Recovered, error) {
	completed := map[string]repo.Recovered{}
	r := d.currentRepo()
	if r == nil {
		return completed, nil
	}
	recs, err := r.Recover(ctx)
	if errors.Is(err, repo.ErrLocked) {
		return nil, fmt.Errorf("%w with backup_dir %s: %w", ErrAlreadyRunning, d.cfg.BackupDir, err)
	}
	if err != nil {
		// The devices recovery could not make sense of are left as
		// they are, and their backups fail until someone looks; the
		// others were recovered.
		d.log.Error().Err(err).Msg("start-up recovery of the backup directory")
	}
	for _, rec := range recs {
		d.log.Warn().Str("udid", rec.UDID).Bool("completed", rec.Completed).Msg("found an interrupted backup in staging")
		if rec.Completed {
			completed[rec.UDID] = rec
		}
	}
	return completed, nil
}

// recoverCommitted records as successes the runs left running whose
// backup was committed: completed by recoverStaging, or committed before
// the daemon stopped.
func (d *Daemon) recoverCommitted(completed map[string]repo.Recovered, now time.Time) error {
	page, err := d.store.History("", store.HistoryQuery{Outcomes: []store.Outcome{store.OutcomeRunning}, Limit: store.MaxHistoryLimit})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, run := range page.Runs {
		// Newest first: only a device's newest open run can be the one
		// whose backup was committed.
		if seen[run.UDID] {
			continue
		}
		seen[run.UDID] = true
		rec, ok := completed[run.UDID]
		switch {
		case ok:
			run.Note = "backupd stopped during the commit; the next start completed it"
		case d.committedSince(run.UDID, run.Start):
			// Stopped after the commit's renames (in its clean-up or
			// retention, or before the run was recorded): no staging was
			// left, but the latest backup is this run's.
			rec.Latest.Path = filepath.Join(d.cfg.BackupDir, run.UDID)
			run.Note = "backupd stopped after the commit, before it recorded the run"
		default:
			continue
		}
		run.Outcome, run.End = store.OutcomeSuccess, now
		run.VersionPath, run.Verify = rec.Latest.Path, "verified before its commit"
		stored, err := d.store.FinishRun(run)
		if err != nil {
			d.log.Error().Err(err).Str("udid", run.UDID).Msg("record a recovered backup")
			continue
		}
		d.publishRun(stored)
	}
	return nil
}

// committedSince reports whether udid's latest backup was committed at or
// after start: a commit stamps the latest backup's directory with its time
// (repo.Commit), and nothing else changes it.
func (d *Daemon) committedSince(udid string, start time.Time) bool {
	r := d.currentRepo()
	if r == nil || start.IsZero() {
		return false
	}
	dir, ok := r.Latest(udid)
	if !ok {
		return false
	}
	fi, err := os.Stat(dir)
	return err == nil && !fi.ModTime().Before(start.Truncate(time.Millisecond))
}
