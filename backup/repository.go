package backup

import (
	"context"
	"errors"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
)

// FromRepo lets Run stage and commit into a backup directory managed by
// backup/repo:
//
//	r, err := repo.Open(backupDir, repo.Options{KeepLast: 3})
//	res, err := engine.Run(ctx, dev, backup.Target{Repo: backup.FromRepo(r)})
func FromRepo(r *repo.Repo) Repository { return repoAdapter{r} }

type repoAdapter struct{ r *repo.Repo }

func (a repoAdapter) Begin(ctx context.Context, udid string) (Staging, error) {
	s, err := a.r.Begin(ctx, udid)
	if errors.Is(err, repo.ErrBusy) {
		// Another backup of this phone is running in this backupd.
		return nil, cause.New(cause.DeviceBusy, err)
	}
	if err != nil {
		return nil, err
	}
	return stagingAdapter{s}, nil
}

type stagingAdapter struct{ s *repo.Staging }

func (a stagingAdapter) Dir() string  { return a.s.Dir() }
func (a stagingAdapter) Abort() error { return a.s.Abort() }

func (a stagingAdapter) Commit(ctx context.Context) (string, error) {
	v, err := a.s.Commit(ctx)
	return v.Path, err
}
