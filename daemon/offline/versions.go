package offline

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/proto/wire"
)

// Versions lists the kept backups of udid, newest first, each verified,
// as the API shows them. It only reads; a phone without backups gets an
// empty list.
func Versions(ctx context.Context, r *repo.Repo, udid string) ([]api.VersionInfo, error) {
	list, err := r.VersionList(ctx, udid, repo.ListOptions{Verify: true})
	if err != nil {
		return nil, err
	}
	out := make([]api.VersionInfo, 0, len(list))
	for _, v := range list {
		vi := api.VersionInfo{
			ID: v.ID, Time: v.Time, Latest: v.Latest, Path: v.Path, Size: v.Size, Files: v.FileCount,
			Encrypted: v.Encrypted, Safety: v.Safety, Verified: v.Verified != nil && *v.Verified,
		}
		if len(v.Problems) > api.MaxVerifyProblems {
			vi.Problems = v.Problems[:api.MaxVerifyProblems]
		} else {
			vi.Problems = v.Problems
		}
		out = append(out, vi)
	}
	return out, nil
}

// maxManifestPlist bounds the Manifest.plist Encrypted reads; a real one
// is a few hundred KiB at most.
const maxManifestPlist = 64 << 20

// Encrypted reports whether the backup in dir is encrypted, as its
// Manifest.plist says; one that cannot be read counts as not encrypted
// (verifying it says more).
func Encrypted(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "Manifest.plist"))
	if err != nil {
		return false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestPlist))
	if err != nil {
		return false
	}
	var m struct {
		IsEncrypted bool `plist:"IsEncrypted"`
	}
	if wire.Decode(data, &m) != nil {
		return false
	}
	return m.IsEncrypted
}
