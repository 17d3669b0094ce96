package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// TreeHash returns a SHA-256 over a directory tree: every entry's path
// relative to dir, its type and permission bits, each regular file's size
// and contents, and each symbolic link's target (never followed).
// Modification times are left out, so a clone hashes like its original.
// Two trees with the same hash are the same backup byte for byte; tests
// use it to show that the latest backup was not touched. Files are only
// ever opened read-only. The pins' lock files (.backupd/pins, when dir is
// a backup directory) are left out: a reader makes them, and they are
// part of no backup.
func TreeHash(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if filepath.ToSlash(rel) == ".backupd/pins" {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode()
		fmt.Fprintf(h, "%q %s %o", filepath.ToSlash(rel), mode.Type(), mode.Perm())
		switch {
		case mode.IsRegular():
			sum, err := fileHash(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " %d %s", fi.Size(), sum)
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " -> %q", target)
		}
		h.Write([]byte{'\n'})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("tree hash %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
