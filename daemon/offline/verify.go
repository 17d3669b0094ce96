package offline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
)

// VerifyProgress is told, before each backup is verified, how many are
// done out of how many and which one comes next.
type VerifyProgress func(done, total int, udid, path string)

// BackupUDIDs lists the devices that have a backup in backup_dir: a
// latest one, older versions, or both; sorted.
func BackupUDIDs(backupDir string) ([]string, error) {
	seen := map[string]bool{}
	add := func(dir string) error {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() && repo.ValidUDID(e.Name()) == nil {
				seen[e.Name()] = true
			}
		}
		return nil
	}
	if err := add(backupDir); err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	if err := add(filepath.Join(backupDir, ".backupd", "versions")); err != nil {
		return nil, fmt.Errorf("list backup versions: %w", err)
	}
	out := make([]string, 0, len(seen))
	for u := range seen {
		out = append(out, u)
	}
	sort.Strings(out)
	return out, nil
}

// VerifyBackups re-verifies the latest backup of each device in udids
// (every device with a backup when udids is empty) and, with versions,
// its older versions. It only reads. A password, when given, checks the
// encrypted backups as deeply as plain ones (repo.VerifyEncrypted); one
// it does not open fails with cause wrong_backup_password. nameOf, when
// not nil, names a
// device; progress, when not nil, hears of each backup before it is
// verified.
//
// A backup that a commit replaces while it is being verified is verified
// again, so a result never mixes two backups; a version that retention
// removes meanwhile is left out. The error is for the context or a
// directory that cannot be listed; a backup that does not verify is a
// result.
func VerifyBackups(ctx context.Context, r *repo.Repo, udids []string, versions bool, password []byte, nameOf func(string) string, progress VerifyProgress) ([]api.VerifyResult, error) {
	if len(udids) == 0 {
		var err error
		if udids, err = BackupUDIDs(r.Dir()); err != nil {
			return nil, err
		}
	}
	type item struct {
		udid string
		v    repo.Version
	}
	var items []item
	for _, u := range udids {
		if dir, ok := r.Latest(u); ok {
			items = append(items, item{u, repo.Version{UDID: u, Path: dir, Latest: true}})
		}
		if !versions {
			continue
		}
		vs, err := r.Versions(u)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			items = append(items, item{u, v})
		}
	}
	out := make([]api.VerifyResult, 0, len(items))
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if progress != nil {
			progress(i, len(items), it.udid, it.v.Path)
		}
		res, keep, err := verifyOne(ctx, r, it.v, password)
		if err != nil {
			return out, err
		}
		if !keep {
			continue
		}
		if nameOf != nil {
			res.Name = nameOf(it.udid)
		}
		out = append(out, res)
	}
	if progress != nil {
		progress(len(items), len(items), "", "")
	}
	return out, nil
}

// verifyAttempts bounds how often a latest backup is verified again
// because a commit swapped it meanwhile; more than one commit during one
// verify does not happen in practice.
const verifyAttempts = 3

// verifyOne verifies one backup. keep is false for a version that
// retention removed while it was being verified.
func verifyOne(ctx context.Context, r *repo.Repo, v repo.Version, password []byte) (res api.VerifyResult, keep bool, err error) {
	for attempt := 1; ; attempt++ {
		before, berr := os.Lstat(v.Path)
		rep, verr := r.VerifyEncrypted(ctx, v.Path, password)
		if ctx.Err() != nil {
			return res, false, ctx.Err()
		}
		after, aerr := os.Lstat(v.Path)
		if !v.Latest && errors.Is(aerr, fs.ErrNotExist) {
			return res, false, nil
		}
		// A commit exchanges the latest directory for the new backup in
		// one rename: a different directory after than before means the
		// report may mix the two.
		swapped := berr != nil || aerr != nil || !os.SameFile(before, after)
		if swapped && attempt < verifyAttempts {
			continue
		}
		res = api.VerifyResult{
			UDID: v.UDID, Path: v.Path, Latest: v.Latest, Version: v.Name, Time: v.Time,
			OK: verr == nil, Encrypted: rep.Encrypted,
			Checked: rep.Checked, NotChecked: rep.NotChecked,
		}
		if v.Latest && aerr == nil {
			// A commit stamps the latest's modification time with when
			// it was completed.
			res.Time = after.ModTime().UTC()
		}
		res.Files = rep.FilesListed
		if !rep.ManifestRead {
			res.Files = rep.FilesOnDisk
		}
		if n := len(rep.Problems); n > api.MaxVerifyProblems {
			res.Problems, res.MoreProblems = rep.Problems[:api.MaxVerifyProblems], n-api.MaxVerifyProblems
		} else {
			res.Problems = rep.Problems
		}
		if verr != nil {
			res.Cause = cause.Of(verr)
			if len(rep.Problems) == 0 {
				res.Error = verr.Error()
			}
		}
		if res.Size, err = treeSize(ctx, v.Path); err != nil && ctx.Err() != nil {
			return res, false, ctx.Err()
		}
		return res, true, nil
	}
}

// treeSize adds up the sizes of the regular files under dir; what cannot
// be read is left out (Verify has said what is wrong with it).
func treeSize(ctx context.Context, dir string) (int64, error) {
	var n int64
	count := 0
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if count++; count%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n, err
}
