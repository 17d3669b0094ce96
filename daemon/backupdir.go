package daemon

import (
	"context"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/backup/repo"
)

// This file opens and closes backup_dir, which may appear after the
// daemon started (a disk mounted late).

// openRepo opens backup_dir. A directory that is not there (a disk not
// mounted yet) is not fatal: the daemon still serves its history and
// says host_not_writable for each device until the directory appears.
func (d *Daemon) openRepo() (*repo.Repo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.repo != nil {
		return d.repo, nil
	}
	opts := d.cfg.Backup.repoOptions()
	opts.Logger = SlogLogger(d.log, "repo")
	opts.Notice = func(msg string) { d.log.Warn().Msg(msg) }
	opts.Now = d.now
	if d.repoOpt != nil {
		opts = d.repoOpt(opts)
	}
	r, err := repo.Open(d.cfg.BackupDir, opts)
	if err != nil {
		d.log.Error().Err(err).Str("backup_dir", d.cfg.BackupDir).Msg("backup directory unavailable")
		return nil, err
	}
	d.repo, d.target = r, backup.FromRepo(r)
	return r, nil
}

// ensureRepo returns the backup directory, opening it if it could not be
// opened so far (and then recovering what a crash left in it).
func (d *Daemon) ensureRepo(ctx context.Context) (*repo.Repo, backup.Repository, error) {
	d.mu.Lock()
	r, t := d.repo, d.target
	d.mu.Unlock()
	if r != nil {
		return r, t, nil
	}
	r, err := d.openRepo()
	if err != nil {
		return nil, nil, err
	}
	if _, err := r.Recover(ctx); err != nil {
		d.log.Error().Err(err).Msg("recovery of the backup directory")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.repo, d.target, nil
}

func (d *Daemon) currentRepo() *repo.Repo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.repo
}

// closeRepo closes backup_dir, if it was opened.
func (d *Daemon) closeRepo() {
	if r := d.currentRepo(); r != nil {
		if err := r.Close(); err != nil {
			d.log.Error().Err(err).Msg("close backup directory")
		}
	}
}
