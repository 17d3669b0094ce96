//go:build unix

package backup

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// renameAt renames src to dst with renameat(2) on the cached handles of
// their directories. done is false when it did nothing and move must
// take its general way: a name that is not a plain one, a directory
// that cannot be opened, or a rename that failed (dst a directory, src
// missing), whose handling needs the full paths. The names are single
// components, and rename does not follow a symbolic link in its last
// component, so the rename stays in the directories the root opened.
func (f *stagingFS) renameAt(src, dst string) (done bool) {
	sd, sn := split(src)
	dd, dn := split(dst)
	if !plainName(sn) || !plainName(dn) {
		return false
	}
	from, err := f.handle(sd)
	if err != nil {
		return false
	}
	to, err := f.handle(dd)
	if err != nil {
		return false
	}
	// Any failure, a missing src included, is left to the general way,
	// which drops the cache and reports it as it always has.
	return unix.Renameat(int(from.Fd()), sn, int(to.Fd()), dn) == nil
}

// handle returns the open directory d, a clean relative path.
func (c *dirCache) handle(d string) (*os.File, error) {
	if h, ok := c.handles[d]; ok {
		return h, nil
	}
	if len(c.handles) >= maxCachedDirs {
		c.dropDirs()
	}
	h, err := c.openDir(d)
	if err != nil {
		return nil, err
	}
	c.handles[d] = h
	c.count(d, 1)
	return h, nil
}

// openDir opens directory d by its last component from its parent's
// cached handle: one openat, where os.Root would open every directory of
// the path again (and ready each for the poller), which for the 512
// directories a backup writes into, in each upload worker and the
// session, was some 6000 system calls. O_NOFOLLOW refuses a symbolic
// link in the last component; the parent handle is inside the root.
func (c *dirCache) openDir(d string) (*os.File, error) {
	parent, name := split(d)
	if d == "." || parent == "." || !plainName(name) {
		return c.root.OpenFile(d, os.O_RDONLY|unix.O_DIRECTORY, 0)
	}
	p, err := c.handle(parent)
	if err != nil {
		return nil, err
	}
	for {
		fd, err := unix.Openat(int(p.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), d), nil
		case err != unix.EINTR:
			return nil, &os.PathError{Op: "openat", Path: d, Err: err}
		}
	}
}

func plainName(n string) bool {
	return n != "" && n != "." && n != ".."
}

// createAt creates the new file name in directory d with openat(2) on the
// directory's cached handle. os.Root.OpenFile makes the same openat and
// then readies the file for the poller, which a regular file never is:
// three fcntl and an epoll_ctl more for every file of a backup. done is
// false when it did nothing (a name that is not a plain one, a directory
// that cannot be opened), which create's general way then reports.
func (c *dirCache) createAt(d, name string) (f fileWriter, done bool, err error) {
	if !plainName(name) {
		return nil, false, nil
	}
	h, err := c.handle(d)
	if err != nil {
		return nil, false, nil
	}
	dirfd := int(h.Fd())
	for attempt := 0; ; attempt++ {
		fd, err := openNew(dirfd, name)
		if err == nil {
			return &rawFile{fd: fd, name: name}, true, nil
		}
		if err != unix.EEXIST || attempt > 0 {
			return nil, true, &os.PathError{Op: "openat", Path: name, Err: err}
		}
		// As in create: a name shared with the last backup is dropped;
		// a directory that is not empty stays and the retry fails on it.
		if err := removeAt(dirfd, name); err != nil && err != unix.ENOENT {
			return nil, true, &os.PathError{Op: "unlinkat", Path: name, Err: err}
		}
	}
}

func openNew(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(privateFile))
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// removeAt removes a file or an empty directory, as os.Remove does: the
// error of unlink is the one returned, unless rmdir says more than that
// name is not a directory.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil {
		return nil
	}
	derr := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if derr == nil {
		return nil
	}
	if derr != unix.ENOTDIR {
		return derr
	}
	return err
}

// rawFile is a new regular file as a bare descriptor. os.NewFile would
// ask the kernel for its flags (an fcntl) and set a finalizer, for every
// file of a backup; a new file is always closed by commit or discard.
type rawFile struct {
	fd   int
	name string
}

// Write writes all of p, as os.File does: a regular file takes it in
// one call unless interrupted or out of space.
func (f *rawFile) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(f.fd, p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &os.PathError{Op: "write", Path: f.name, Err: err}
		}
		if m == 0 {
			return n, &os.PathError{Op: "write", Path: f.name, Err: io.ErrShortWrite}
		}
		n += m
	}
	return n, nil
}

// Close closes the descriptor; an EINTR from close(2) on Linux means it
// is closed, so it is not retried.
func (f *rawFile) Close() error {
	if f.fd < 0 {
		return os.ErrClosed
	}
	err := unix.Close(f.fd)
	f.fd = -1
	if err != nil && err != unix.EINTR {
		return &os.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

func (f *rawFile) Fd() uintptr  { return uintptr(f.fd) }
func (f *rawFile) Name() string { return f.name }
