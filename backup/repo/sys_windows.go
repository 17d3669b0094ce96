package repo

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

// syncDir does nothing on Windows: a directory handle cannot be flushed
// without write access, and NTFS journals its directory changes.
func syncDir(string) error { return nil }

// syncPrivateFile flushes a file that no older backup shares. Windows can
// only flush a handle opened for writing, so it first checks the link
// count on a read-only handle and never opens a shared (hard-linked) file
// for writing; the write handle truncates and writes nothing.
func syncPrivateFile(path string, _ fs.FileInfo) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	var info windows.ByHandleFileInformation
	err = windows.GetFileInformationByHandle(windows.Handle(f.Fd()), &info)
	f.Close()
	if err != nil {
		return &os.PathError{Op: "GetFileInformationByHandle", Path: path, Err: err}
	}
	if info.NumberOfLinks > 1 {
		return nil
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer w.Close()
	return w.Sync()
}

// idOf: Windows has no atomic directory exchange, so the journal never
// needs identities there.
func idOf(fs.FileInfo) (fileID, bool) { return fileID{}, false }

// Win32 errors CreateHardLink gives on file systems without hard links,
// across volumes, and at the per-file link limit.
const (
	errorInvalidFunction windows.Errno = 1
	errorNotSameDevice   windows.Errno = 17
	errorNotSupported    windows.Errno = 50
	errorTooManyLinks    windows.Errno = 1142
)

func linkUnsupported(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch windows.Errno(errno) {
		case errorInvalidFunction, errorNotSameDevice, errorNotSupported:
			return true
		}
	}
	return errors.Is(err, errors.ErrUnsupported)
}

func tooManyLinks(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && windows.Errno(errno) == errorTooManyLinks
}

// lockFile takes an exclusive LockFileEx lock on the first byte of path;
// Windows releases it when the process ends.
func lockFile(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return lockFileEx(f, true)
}

// lockPinFile takes a non-blocking shared or exclusive lock on a pin's
// lock file (pinlock.go), creating the file if needed.
func lockPinFile(path string, exclusive bool) (io.Closer, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, err
	}
	return lockFileEx(f, exclusive)
}

// lockFileEx locks f's first byte without waiting; it closes f unless it
// returns it.
func lockFileEx(f *os.File, exclusive bool) (io.Closer, error) {
	flags := uint32(windows.LOCKFILE_FAIL_IMMEDIATELY)
	if exclusive {
		flags |= windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	ol := new(windows.Overlapped)
	err := windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, ol)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		f.Close()
		return nil, ErrLocked
	}
	f.Close()
	return nil, &os.PathError{Op: "LockFileEx", Path: f.Name(), Err: err}
}
