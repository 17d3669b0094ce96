package repo

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/backupd/backupd/cause"
)

// classify gives a file-system error its cause (host_disk_full,
// host_not_writable) at the edge of the package, so the engine and the
// daemon see a *cause.Error. Errors that already carry a cause, and errors
// whose errno names none, are returned as they are.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ce *cause.Error
	if errors.As(err, &ce) {
		return err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if c := cause.FromErrno(errno); c != cause.None {
			return cause.New(c, err)
		}
	}
	return err
}

// ValidUDID reports whether udid is safe to use as a directory name: 1 to
// 64 ASCII letters, digits and '-' (real UDIDs are 40 hex digits, or
// "00008030-001A2B3C4D5E802E"), and not a name Windows reserves.
func ValidUDID(udid string) error {
	if udid == "" || len(udid) > 64 {
		return fmt.Errorf("%w %q: want 1 to 64 characters", ErrInvalidUDID, udid)
	}
	for i := 0; i < len(udid); i++ {
		c := udid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%w %q: only letters, digits and '-'", ErrInvalidUDID, udid)
		}
	}
	switch u := strings.ToUpper(udid); {
	case u == "CON", u == "PRN", u == "AUX", u == "NUL",
		len(u) == 4 && (strings.HasPrefix(u, "COM") || strings.HasPrefix(u, "LPT")) && u[3] >= '0' && u[3] <= '9':
		return fmt.Errorf("%w %q: a device name on Windows", ErrInvalidUDID, udid)
	}
	return nil
}

// mkdirPrivate makes dir with mode 0700 unless it exists as a directory.
// Backups hold private data, so nothing of ours is readable by others.
func mkdirPrivate(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return nil
		}
	}
	return err
}

// exists reports whether path exists (as anything); errors other than "does
// not exist" are returned.
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// randomName returns prefix plus 12 random hex digits.
func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + hex.EncodeToString(b[:])
}

// trash moves path into .backupd/trash in one rename, so that it vanishes
// from where it was atomically however long deleting it takes, then
// deletes it. A crash or error while deleting leaves it in trash, which
// Recover empties. A missing path is fine.
func (r *Repo) trash(path, label string, step func(string) error) error {
	if err := mkdirPrivate(r.trashRoot()); err != nil {
		return err
	}
	dst := filepath.Join(r.trashRoot(), randomName(label+"."))
	if err := os.Rename(path, dst); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return err
	}
	if step != nil {
		if err := step("trashed"); err != nil {
			return err
		}
	}
	return os.RemoveAll(dst)
}

// emptyTrash deletes everything in .backupd/trash.
func (r *Repo) emptyTrash() error {
	entries, err := os.ReadDir(r.trashRoot())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(r.trashRoot(), e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// syncTree makes a staged tree durable before the commit point: every
// directory, and every regular file not shared with an older backup. A
// file whose inode another backup shares (a hard link) was made durable
// when that backup was committed, and syncing it would cost one fsync per
// unchanged file; files are opened read-only either way, so a shared inode
// is never opened for writing. Symbolic links are not followed. On Linux
// one syncfs(2) does all of it (see syncWholeFS).
func syncTree(root string, canceled func() error) error {
	if ok, err := syncWholeFS(root); ok {
		return err
	}
	var dirs []string
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n%256 == 0 {
			if err := canceled(); err != nil {
				return err
			}
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, p)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if err := syncPrivateFile(p, fi); err != nil {
				return fmt.Errorf("sync %s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Children before parents, so a parent's entries name durable
	// directories.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syncDir(dirs[i]); err != nil {
			return fmt.Errorf("sync %s: %w", dirs[i], err)
		}
	}
	return nil
}
