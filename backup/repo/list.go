package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/backupd/backupd/cause"
)

// VersionInfo describes one kept backup of a device for a person
// choosing what to restore (backupd versions).
type VersionInfo struct {
	Version
	// ID is the name Resolve and Pin take: the version's directory name,
	// or for the latest the name it will keep once it is retired.
	ID string
	// Size is the content bytes of its files, FileCount the backed-up
	// files (the xx/<fileID> entries).
	Size      int64
	FileCount int
	// Encrypted: Manifest.plist says IsEncrypted.
	Encrypted bool
	// Safety: backupd took it just before a restore (MarkSafety).
	Safety bool
	// Verified is nil when the list was made without verifying, else
	// whether the backup verifies; Problems says why not.
	Verified *bool
	Problems []string
}

// ListOptions tune VersionList.
type ListOptions struct {
	// Verify runs Verify on each backup, which reads every Manifest.db
	// and stats every file.
	Verify bool
}

// VersionList returns each kept backup of udid, newest first: the latest,
// then the older versions. It only reads.
func (r *Repo) VersionList(ctx context.Context, udid string, opts ListOptions) ([]VersionInfo, error) {
	if err := ValidUDID(udid); err != nil {
		return nil, fmt.Errorf("repo: versions: %w", err)
	}
	all, err := r.kept(udid)
	if err != nil {
		return nil, err
	}
	marks, err := r.readMarks(udid)
	if err != nil {
		return nil, err
	}
	out := make([]VersionInfo, 0, len(all))
	for _, v := range all {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		vi := VersionInfo{Version: v, ID: nameOf(v)}
		vi.Safety = marks.Safety[vi.ID] != ""
		if vi.Size, vi.FileCount, err = treeSize(v.Path); err != nil {
			return nil, classify(fmt.Errorf("repo: versions: %w", err))
		}
		if opts.Verify {
			rep, err := r.Verify(ctx, v.Path)
			if err != nil && cause.Of(err) != cause.VerifyFailed {
				return nil, err
			}
			ok := err == nil
			vi.Verified, vi.Problems, vi.Encrypted = &ok, rep.Problems, rep.Encrypted
		} else {
			vi.Encrypted = manifestEncrypted(v.Path)
		}
		out = append(out, vi)
	}
	return out, nil
}

// treeSize adds up the backed-up files of a backup: the regular files in
// its two-hex-digit directories.
func treeSize(dir string) (size int64, files int, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range entries {
		if !e.IsDir() || len(e.Name()) != 2 || !isHex(e.Name()) {
			continue
		}
		sub, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return 0, 0, err
		}
		for _, f := range sub {
			if !f.Type().IsRegular() {
				continue
			}
			fi, err := f.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return 0, 0, err
			}
			size += fi.Size()
			files++
		}
	}
	return size, files, nil
}

// manifestEncrypted reads IsEncrypted from the backup's Manifest.plist;
// an unreadable one counts as not encrypted (Verify says more).
func manifestEncrypted(dir string) bool {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return false
	}
	defer root.Close()
	v := &verifier{root: root}
	var m struct {
		IsEncrypted bool `plist:"IsEncrypted"`
	}
	if ok, err := v.plist("Manifest.plist", &m); !ok || err != nil {
		return false
	}
	return m.IsEncrypted
}

// marks is .backupd/marks/<UDID>.json: what backupd knows about a
// device's backups beyond the backups themselves, by name.
type marks struct {
	// Safety maps the name of each safety backup to why it was taken.
	Safety map[string]string `json:"safety,omitempty"`
}

func (r *Repo) marksPath(udid string) string {
	return filepath.Join(r.meta(), "marks", udid+".json")
}

func (r *Repo) readMarks(udid string) (marks, error) {
	var m marks
	b, err := os.ReadFile(r.marksPath(udid))
	if isNotExist(err) {
		return m, nil
	}
	if err != nil {
		return m, classify(fmt.Errorf("repo: marks: %w", err))
	}
	if err := json.Unmarshal(b, &m); err != nil {
		// A damaged marks file costs the labels, never a backup.
		r.log.Warn("ignoring a damaged marks file", "path", r.marksPath(udid), "err", err)
		return marks{}, nil
	}
	return m, nil
}

// MarkSafety records that the backup v (as Commit or Resolve returned
// it) is a safety backup, taken before a restore for the reason note.
// VersionList shows it; the mark follows the backup when it is retired,
// and marks of backups that are gone are dropped.
func (r *Repo) MarkSafety(udid string, v Version, note string) error {
	if err := ValidUDID(udid); err != nil {
		return fmt.Errorf("repo: mark: %w", err)
	}
	if note == "" {
		note = "safety backup"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.lockLocked(); err != nil {
		return err
	}
	m, err := r.readMarks(udid)
	if err != nil {
		return err
	}
	all, err := r.kept(udid)
	if err != nil {
		return err
	}
	present := map[string]bool{}
	for _, k := range all {
		present[nameOf(k)] = true
	}
	name := nameOf(v)
	if !present[name] {
		return fmt.Errorf("repo: mark %s of %s: %w", name, udid, ErrNoSuchVersion)
	}
	safety := map[string]string{name: note}
	for k, why := range m.Safety {
		if present[k] && k != name {
			safety[k] = why
		}
	}
	m.Safety = safety
	return r.writeMarks(udid, m)
}

// writeMarks replaces the marks file atomically. r.mu is held.
func (r *Repo) writeMarks(udid string, m marks) error {
	dir := filepath.Dir(r.marksPath(udid))
	if err := mkdirPrivate(dir); err != nil {
		return classify(fmt.Errorf("repo: marks: %w", err))
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, randomName(strings.TrimSuffix(filepath.Base(r.marksPath(udid)), ".json")+".tmp."))
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return classify(fmt.Errorf("repo: marks: %w", err))
	}
	if err := os.Rename(tmp, r.marksPath(udid)); err != nil {
		os.Remove(tmp)
		return classify(fmt.Errorf("repo: marks: %w", err))
	}
	return syncDir(dir)
}
