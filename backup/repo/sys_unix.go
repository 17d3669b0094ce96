//go:build unix

package repo

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// syncDir fsyncs a directory, so the renames and creations in it are
// durable. File systems that cannot fsync a directory (some network and
// FUSE ones say EINVAL or ENOTSUP) are let through: there is nothing more
// we can do there.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// syncPrivateFile fsyncs a file that no older backup shares. It opens it
// read-only: fsync needs no write access on Unix.
func syncPrivateFile(path string, fi fs.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && uint64(st.Nlink) > 1 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// idOf returns a directory's identity.
func idOf(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}, true
}

// linkUnsupported reports whether link(2) failed because the file system
// has no hard links (FAT and exFAT say EPERM, others EOPNOTSUPP), or
// because source and destination are on different file systems.
func linkUnsupported(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EXDEV) || errors.Is(err, errors.ErrUnsupported)
}

// tooManyLinks reports whether one inode has reached the file system's
// limit of hard links: that file is copied, the others still linked.
func tooManyLinks(err error) bool { return errors.Is(err, syscall.EMLINK) }

// lockFile takes an exclusive, non-blocking flock on path. The kernel
// drops it when the process dies, so a crash never leaves it held.
func lockFile(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return flockFile(f, unix.LOCK_EX)
}

// lockPinFile takes a non-blocking flock on a pin's lock file, shared or
// exclusive (pinlock.go), creating the file if needed. The file is opened
// read-only when it exists, since flock needs no write access: a reader
// who may not write the file can still pin.
func lockPinFile(path string, exclusive bool) (io.Closer, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	return flockFile(f, how)
}

// flockFile takes a non-blocking flock of kind how on f; it closes f
// unless it returns it.
func flockFile(f *os.File, how int) (io.Closer, error) {
	var err error
	for {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, unix.EWOULDBLOCK):
		f.Close()
		return nil, ErrLocked
	case errors.Is(err, unix.ENOLCK), errors.Is(err, errors.ErrUnsupported):
		return f, errLockUnsupported
	}
	f.Close()
	return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
}
