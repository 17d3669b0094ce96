package repo

import (
	"fmt"
	"os"
	"path/filepath"
)

// ProbeHardLinks tells whether the file system of backupDir has hard links,
// which versions rely on (a clone shares unchanged files with the backup
// it came from). It links a new file inside <backupDir>/.backupd, where
// clones are made, and removes both. ok is false with a nil error when
// the file system refuses links; an error means the probe could not run
// (a missing or read-only directory) and carries its cause.
func ProbeHardLinks(backupDir string) (ok bool, err error) {
	meta := filepath.Join(backupDir, ".backupd")
	if err := mkdirPrivate(meta); err != nil {
		return false, classify(fmt.Errorf("hard link probe: %w", err))
	}
	src := filepath.Join(meta, randomName("linkprobe-"))
	f, err := os.OpenFile(src, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return false, classify(fmt.Errorf("hard link probe: %w", err))
	}
	f.Close()
	defer os.Remove(src)
	dst := src + ".link"
	err = os.Link(src, dst)
	switch {
	case err == nil:
		os.Remove(dst)
		return true, nil
	case linkUnsupported(err):
		return false, nil
	}
	return false, classify(fmt.Errorf("hard link probe: %w", err))
}
