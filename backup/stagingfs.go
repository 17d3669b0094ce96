package backup

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/devicelink"
)

// maxCachedDirs bounds the directories stagingFS keeps open. A backup
// writes into <UDID>/Snapshot/xx for 256 values of xx, plus a few more.
const maxCachedDirs = 512

// maxCopyDepth bounds how deep CopyItem descends into a directory.
const maxCopyDepth = 32

// stagingFS does the file operations a device asks for, inside the
// staging root only. Every path it takes has passed devicePath; os.Root
// then refuses anything that leaves the root through a symlink.
//
// Staging starts as a clone of the last backup whose files share inodes
// with it, so stagingFS never opens an existing file for writing: see
// create.
//
// A stagingFS is used by one goroutine at a time; the upload workers
// each create files through a dirCache of their own on the same root
// (os.Root is safe for concurrent use).
type stagingFS struct {
	root *os.Root
	dirCache
	buf []byte
}

// dirCache caches the opened directories files are created in, so a file
// costs one openat rather than a walk of its whole path. Operations that
// remove or move directories drop the cache, so a handle never outlives
// the directory it names.
type dirCache struct {
	root *os.Root
	dirs map[string]*os.Root
	// handles are directories opened for openat and renameat
	// (dirfd_unix.go), by the same clean relative paths.
	handles map[string]*os.File
	// below counts the entries of dirs and handles at or below each
	// path, so that dropping those under a moved file, which has none,
	// costs a lookup rather than a look through them all.
	below map[string]int
}

func newDirCache(root *os.Root) dirCache {
	return dirCache{root: root, dirs: map[string]*os.Root{}, handles: map[string]*os.File{}, below: map[string]int{}}
}

// count adds n to the counts of d and of each directory above it.
func (c *dirCache) count(d string, n int) {
	for {
		if c.below[d] += n; c.below[d] <= 0 {
			delete(c.below, d)
		}
		if d == "." {
			return
		}
		d = path.Dir(d)
	}
}

func openStagingFS(dir string) (*stagingFS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open staging directory: %w", err)
	}
	return &stagingFS{root: r, dirCache: newDirCache(r)}, nil
}

// Close closes the root and every cached directory; it may be called
// again. It must run before the repository moves staging, since an open
// directory cannot be renamed on Windows.
func (f *stagingFS) Close() error {
	if f.root == nil {
		return nil
	}
	f.dropDirs()
	err := f.root.Close()
	f.root = nil
	return err
}

func (c *dirCache) dropDirs() {
	for _, r := range c.dirs {
		r.Close()
	}
	clear(c.dirs)
	for _, f := range c.handles {
		f.Close()
	}
	clear(c.handles)
	clear(c.below)
}

// dropUnder closes the cached directories at p or below it, whose paths
// no longer name them once p has moved or been replaced.
func (c *dirCache) dropUnder(p string) {
	if c.below[p] == 0 {
		return
	}
	prefix := p + "/"
	under := func(d string) bool { return d == p || strings.HasPrefix(d, prefix) }
	for d, r := range c.dirs {
		if under(d) {
			r.Close()
			delete(c.dirs, d)
			c.count(d, -1)
		}
	}
	for d, f := range c.handles {
		if under(d) {
			f.Close()
			delete(c.handles, d)
			c.count(d, -1)
		}
	}
}

// dir returns the root of directory d, a clean relative path.
func (c *dirCache) dir(d string) (*os.Root, error) {
	if d == "." || d == "" {
		return c.root, nil
	}
	if r, ok := c.dirs[d]; ok {
		return r, nil
	}
	if len(c.dirs) >= maxCachedDirs {
		c.dropDirs()
	}
	r, err := c.root.OpenRoot(d)
	if err != nil {
		return nil, err
	}
	c.dirs[d] = r
	c.count(d, 1)
	return r, nil
}

// split returns the directory and name of a clean relative path.
func split(p string) (string, string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ".", p
	}
	d, name := p[:i], p[i+1:]
	if _, clean := scanPath(d); !clean {
		d = path.Clean(d)
	}
	return d, name
}

// A backup holds a person's private data, so what it creates is for its
// owner alone, and stays so when copied with cp -a or rsync. A umask can
// only take bits away, so these modes hold whatever umask the service
// started with.
const (
	privateFile fs.FileMode = 0o600
	privateDir  fs.FileMode = 0o700
)

// fileWriter is a new file's descriptor: an *os.File, or on unix a bare
// one (rawFile).
type fileWriter interface {
	io.Writer
	Close() error
	Fd() uintptr
	Name() string
}

// newFile is a new file being written.
type newFile struct {
	File fileWriter
	// root and path name it for its removal. Not the directory it was
	// created in: a worker may hand an open file to the session and go
	// on, and drop that directory from its cache meanwhile.
	root *os.Root
	path string
	// off is how much was written; queued how much of it was handed to
	// the kernel's write-back; dropped how much of that is on disk and
	// out of the page cache.
	off, queued, dropped int64
}

// create starts a new file at p, replacing what p names.
//
// The file is always a new inode (O_EXCL): when p exists — in staging
// that is usually a hard link shared with the last backup — the name is
// dropped first, which leaves the shared inode to the backup that keeps
// it. A file is not written under a temporary name and renamed: the
// staging is all or nothing (any failure discards it whole), so a
// half-written file under its final name is never seen by anyone, and
// the extra rename per file costs a third of the transfer of a backup
// of small files.
func (c *dirCache) create(p string) (*newFile, error) {
	d, name := split(p)
	if file, done, err := c.createAt(d, name); done {
		if err != nil {
			return nil, err
		}
		return &newFile{File: file, root: c.root, path: p}, nil
	}
	r, err := c.dir(d)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		file, err := r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, privateFile)
		if err == nil {
			return &newFile{File: file, root: c.root, path: p}, nil
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return nil, err
		}
		// A directory that is not empty stays, and the retry fails on it.
		if err := r.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
}

// writebackChunk is how much written data is handed to the kernel's
// write-back at a time, so the disk works while the transfer goes on and
// little is left to flush when the repository commits.
const writebackChunk = 8 << 20

// A large file is written "drop-behind": once a chunk has been handed to
// write-back, the chunk before it is waited for and dropped from the page
// cache. The pages freed are the ones the next chunk is written into, so
// a large file streams through a few chunks of page cache. Left in the
// cache, a backup's gigabytes would push out everything a person's
// machine had cached, and every byte would be copied into a page the
// kernel has to find afresh, which costs more system CPU than the copy
// itself (twice as much per GiB, measured on a virtual machine whose
// host takes free memory back). The files are not read again before the
// commit: verify checks sizes, not contents.
func (n *newFile) Write(p []byte) (int, error) {
	m, err := n.File.Write(p)
	n.off += int64(m)
	if err == nil && n.off-n.queued >= writebackChunk {
		startWriteback(n.File, n.queued, n.off-n.queued)
		if n.queued > n.dropped {
			// An error writing the chunk out fails the file now, not
			// at the commit's fsync.
			err = dropBehind(n.File, n.dropped, n.queued-n.dropped)
			n.dropped = n.queued
		}
		n.queued = n.off
	}
	return m, err
}

// writebackMin is the smallest file whose tail is handed to write-back
// on its own: for small files the call costs more than it saves, and the
// one syncfs before the commit flushes them together.
const writebackMin = 1 << 20

// commit closes the finished file.
func (n *newFile) commit() error {
	if n.off > n.queued && n.off >= writebackMin {
		startWriteback(n.File, n.queued, n.off-n.queued)
	}
	if err := n.File.Close(); err != nil {
		n.root.Remove(n.path)
		return err
	}
	return nil
}

// discard closes and removes the unfinished file.
func (n *newFile) discard() {
	n.File.Close()
	n.root.Remove(n.path)
}

// writeFile writes a whole small file, such as Info.plist.
func (f *stagingFS) writeFile(p string, data []byte) error {
	nf, err := f.create(p)
	if err != nil {
		return err
	}
	if _, err := nf.Write(data); err != nil {
		nf.discard()
		return err
	}
	return nf.commit()
}

// readFile reads a small file, refusing one over limit bytes.
func (f *stagingFS) readFile(p string, limit int64) ([]byte, error) {
	file, err := f.root.Open(p)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return b, nil
}

// mkdirAll creates p and its missing parents.
func (f *stagingFS) mkdirAll(p string) error {
	return f.root.MkdirAll(p, privateDir)
}

// removeAll removes p, whatever it is; a missing p is fine.
func (f *stagingFS) removeAll(p string) error {
	f.dropDirs()
	err := f.root.RemoveAll(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// move replaces dst with src, as libimobiledevice does: remove dst (a
// directory recursively), then rename. A rename replaces a file by
// itself, so the removal is only done when the rename refuses (dst is a
// directory, or src is one and dst is not an empty directory).
func (f *stagingFS) move(src, dst string) error {
	// A device moves thousands of files one by one (Snapshot/xx/h →
	// xx/h). os.Root.Rename walks both paths for each, a dozen system
	// calls; renameat on cached directories is one.
	if f.renameAt(src, dst) {
		f.dropUnder(src)
		f.dropUnder(dst)
		return nil
	}
	f.dropDirs()
	err := f.root.Rename(src, dst)
	if err == nil || isRootEscape(err) || errors.Is(err, fs.ErrNotExist) {
		return err
	}
	fi, lerr := f.root.Lstat(dst)
	if lerr != nil {
		return err // dst is not what is in the way
	}
	if fi.IsDir() {
		lerr = f.root.RemoveAll(dst)
	} else {
		lerr = f.root.Remove(dst)
	}
	if lerr != nil && !errors.Is(lerr, fs.ErrNotExist) {
		return lerr
	}
	return f.root.Rename(src, dst)
}

// copy copies src to dst: a file into a new file renamed over dst, a
// directory entry by entry. Like libimobiledevice, a missing src copies
// nothing and is not an error.
func (f *stagingFS) copy(src, dst string) error {
	f.dropDirs()
	return f.copyDepth(src, dst, 0)
}

func (f *stagingFS) copyDepth(src, dst string, depth int) error {
	if depth > maxCopyDepth {
		return fmt.Errorf("copy %s: deeper than %d directories: %w", src, maxCopyDepth, syscall.ELOOP)
	}
	fi, err := f.root.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case fi.Mode().IsRegular():
		return f.copyFile(src, dst)
	case fi.IsDir():
		if err := f.root.MkdirAll(dst, privateDir); err != nil {
			return err
		}
		d, err := f.root.Open(src)
		if err != nil {
			return err
		}
		entries, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := f.copyDepth(src+"/"+e.Name(), dst+"/"+e.Name(), depth+1); err != nil {
				return err
			}
		}
		return nil
	default:
		// Symlinks and devices are never part of a backup.
		return nil
	}
}

func (f *stagingFS) copyFile(src, dst string) error {
	in, err := f.root.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := f.create(dst)
	if err != nil {
		return err
	}
	if f.buf == nil {
		f.buf = make([]byte, copyBufSize)
	}
	if _, err := io.CopyBuffer(onlyWriter{out}, onlyReader{in}, f.buf); err != nil {
		out.discard()
		return err
	}
	return out.commit()
}

// onlyWriter and onlyReader hide ReadFrom and WriteTo so io.CopyBuffer
// uses the buffer it is given rather than allocating its own.
type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }

// dirEntry describes one entry of a directory listing.
type dirEntry struct {
	name string
	info fs.FileInfo
}

// list reads directory p. A missing directory lists as empty, as in
// libimobiledevice.
func (f *stagingFS) list(p string) ([]dirEntry, error) {
	d, err := f.root.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]dirEntry, 0, len(entries))
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, dirEntry{e.Name(), info})
	}
	return out, nil
}

// dlCode maps an error of a file operation to the DeviceLink code the
// device gets: errno values as libimobiledevice maps them, and every
// flavour of a full disk (ENOSPC, EDQUOT, Windows' ERROR_DISK_FULL) as
// ENOSPC, which makes the device report not enough space.
func dlCode(err error) int64 {
	if isNoSpace(err) {
		return devicelink.CodeNoSpace
	}
	return devicelink.ErrorCode(err)
}

func isNoSpace(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && cause.FromErrno(errno) == cause.HostDiskFull
}

// isHostFatal reports whether a local file error means this host cannot
// hold the backup at all (a full or read-only disk, no permission, an I/O
// error), so that the run fails with that cause whatever the device says
// afterwards.
func isHostFatal(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch cause.FromErrno(errno) {
	case cause.HostDiskFull, cause.HostNotWritable:
		return true
	}
	return errors.Is(err, syscall.EIO)
}
