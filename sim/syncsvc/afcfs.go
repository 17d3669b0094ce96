package syncsvc

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/backupd/backupd/proto/afc"
)

// DefaultFSCapacity is the size of a new AFCFS: room for what tools write
// (the sync lock file, a restore's app list), small enough that a hostile
// host cannot exhaust the simulator's memory.
const DefaultFSCapacity = 64 << 20

// AFCFS is the in-memory media partition a device exposes over AFC, with
// the flock-style locks its open files hold. One per device, shared by all
// its AFC connections so that files and locks outlive a connection; safe
// for concurrent use.
type AFCFS struct {
	mu       sync.Mutex
	root     *fsNode
	capacity int64
	used     int64
}

type fsNode struct {
	dir      bool
	data     []byte
	children map[string]*fsNode
	mtime    time.Time
	birth    time.Time
	// unlinked marks a removed node. Its bytes count against the capacity
	// until the last open file on it closes, as on a real file system.
	unlinked bool
	opens    int
	// locks maps each open file holding a lock to LockBitShared or
	// LockBitExclusive.
	locks map[*openFile]afc.LockOp
}

// openFile is one handle: an open file description with its own position
// and lock, as with open(2) and flock(2).
type openFile struct {
	node     *fsNode
	path     string
	pos      int64
	read     bool
	write    bool
	appendTo bool
}

// NewAFCFS returns a file system with the top-level directories of an
// iPhone's media partition and DefaultFSCapacity bytes.
func NewAFCFS() *AFCFS {
	now := time.Now()
	fsys := &AFCFS{root: newDir(now), capacity: DefaultFSCapacity}
	for _, d := range []string{"/Books", "/DCIM", "/Downloads", "/iTunes_Control/iTunes", "/Photos", "/PublicStaging"} {
		if err := fsys.MkdirAll(d); err != nil {
			panic(err) // fixed paths in an empty tree: cannot fail
		}
	}
	return fsys
}

func newDir(now time.Time) *fsNode {
	return &fsNode{dir: true, children: map[string]*fsNode{}, mtime: now, birth: now}
}

// SetCapacity changes how many bytes of file data the file system holds.
func (fsys *AFCFS) SetCapacity(n int64) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	fsys.capacity = n
}

// MkdirAll creates a directory and its missing parents.
func (fsys *AFCFS) MkdirAll(p string) error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if st := fsys.mkdirAll(p); st != afc.StatusSuccess {
		return statusErr(afc.OpMakeDir, p, st)
	}
	return nil
}

// WriteFile creates or replaces a file, creating its parents: how tests
// and the core seed files a tool will read.
func (fsys *AFCFS) WriteFile(p string, data []byte) error {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	dir, name := splitPath(p)
	if name == "" {
		return statusErr(afc.OpWriteFile, p, afc.StatusInvalidArg)
	}
	if st := fsys.mkdirAll(dir); st != afc.StatusSuccess {
		return statusErr(afc.OpWriteFile, p, st)
	}
	n, st := fsys.create(p)
	if st != afc.StatusSuccess {
		return statusErr(afc.OpWriteFile, p, st)
	}
	if st := fsys.resize(n, int64(len(data))); st != afc.StatusSuccess {
		return statusErr(afc.OpWriteFile, p, st)
	}
	copy(n.data, data)
	n.mtime = time.Now()
	return nil
}

// ReadFile returns a copy of a file's contents.
func (fsys *AFCFS) ReadFile(p string) ([]byte, error) {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	n := fsys.lookup(p)
	switch {
	case n == nil:
		return nil, statusErr(afc.OpReadFile, p, afc.StatusObjectNotFound)
	case n.dir:
		return nil, statusErr(afc.OpReadFile, p, afc.StatusObjectIsDir)
	}
	return slices.Clone(n.data), nil
}

// Exists reports whether p names a file or directory.
func (fsys *AFCFS) Exists(p string) bool {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	return fsys.lookup(p) != nil
}

// Locked reports whether some open file holds a lock on p.
func (fsys *AFCFS) Locked(p string) bool {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	n := fsys.lookup(p)
	return n != nil && len(n.locks) > 0
}

// statusErr makes the error the exported methods return, so that callers
// can test it with errors.Is(err, afc.ErrNotFound) and the like.
func statusErr(op afc.Opcode, p string, st afc.Status) error {
	return fmt.Errorf("%s: %w", p, &afc.StatusError{Op: op, Status: st})
}

// cleanPath maps any path a host sends to an absolute, clean one; ".."
// cannot climb above the root.
func cleanPath(p string) string { return path.Clean("/" + p) }

// splitPath returns the parent directory and the last element of p; the
// element is empty for the root.
func splitPath(p string) (string, string) {
	c := cleanPath(p)
	if c == "/" {
		return "/", ""
	}
	dir, name := path.Split(c)
	return path.Clean(dir), name
}

func (fsys *AFCFS) lookup(p string) *fsNode {
	n := fsys.root
	for _, el := range strings.Split(cleanPath(p), "/") {
		if el == "" {
			continue
		}
		if !n.dir {
			return nil
		}
		if n = n.children[el]; n == nil {
			return nil
		}
	}
	return n
}

func (fsys *AFCFS) mkdirAll(p string) afc.Status {
	n := fsys.root
	now := time.Now()
	for _, el := range strings.Split(cleanPath(p), "/") {
		if el == "" {
			continue
		}
		c := n.children[el]
		if c == nil {
			c = newDir(now)
			n.children[el] = c
			n.mtime = now
		} else if !c.dir {
			return afc.StatusObjectExists
		}
		n = c
	}
	return afc.StatusSuccess
}

// create returns the file at p, creating it empty in an existing
// directory if it is missing.
func (fsys *AFCFS) create(p string) (*fsNode, afc.Status) {
	dir, name := splitPath(p)
	parent := fsys.lookup(dir)
	switch {
	case name == "":
		return nil, afc.StatusObjectIsDir
	case parent == nil || !parent.dir:
		return nil, afc.StatusObjectNotFound
	}
	if n := parent.children[name]; n != nil {
		if n.dir {
			return nil, afc.StatusObjectIsDir
		}
		return n, afc.StatusSuccess
	}
	now := time.Now()
	n := &fsNode{mtime: now, birth: now}
	parent.children[name] = n
	parent.mtime = now
	return n, afc.StatusSuccess
}

// resize sets a file's length, zero-filling growth, within the capacity.
func (fsys *AFCFS) resize(n *fsNode, size int64) afc.Status {
	if size < 0 {
		return afc.StatusInvalidArg
	}
	delta := size - int64(len(n.data))
	if delta > 0 && fsys.used+delta > fsys.capacity {
		return afc.StatusNoSpaceLeft
	}
	// Reuse the array unless that would keep much more memory than the
	// capacity accounts for.
	if size <= int64(cap(n.data)) && size >= int64(cap(n.data))/2 {
		old := len(n.data)
		n.data = n.data[:size]
		if int(size) > old {
			clear(n.data[old:])
		}
	} else {
		// Doubling keeps a file written in many small pieces linear.
		grown := make([]byte, size, max(size, min(2*int64(cap(n.data)), fsys.capacity)))
		copy(grown, n.data)
		n.data = grown
	}
	fsys.used += delta
	return afc.StatusSuccess
}

// unlink marks a detached subtree removed. Nodes nobody has open give
// their bytes back now; open ones when they close (see closeFile).
func (fsys *AFCFS) unlink(n *fsNode) {
	if n.unlinked {
		return
	}
	n.unlinked = true
	if n.opens == 0 {
		fsys.used -= int64(len(n.data))
		n.data = nil
	}
	for _, c := range n.children {
		fsys.unlink(c)
	}
}

func (fsys *AFCFS) remove(p string, recursive bool) afc.Status {
	dir, name := splitPath(p)
	if name == "" {
		return afc.StatusPermDenied
	}
	parent := fsys.lookup(dir)
	if parent == nil || !parent.dir || parent.children[name] == nil {
		return afc.StatusObjectNotFound
	}
	n := parent.children[name]
	if n.dir && len(n.children) > 0 && !recursive {
		// What devices answer; libimobiledevice reads it as "directory
		// not empty".
		return afc.StatusUnknownError
	}
	fsys.unlink(n)
	delete(parent.children, name)
	parent.mtime = time.Now()
	return afc.StatusSuccess
}

func (fsys *AFCFS) rename(from, to string) afc.Status {
	fdir, fname := splitPath(from)
	tdir, tname := splitPath(to)
	if fname == "" || tname == "" {
		return afc.StatusInvalidArg
	}
	fparent, tparent := fsys.lookup(fdir), fsys.lookup(tdir)
	if fparent == nil || !fparent.dir || fparent.children[fname] == nil {
		return afc.StatusObjectNotFound
	}
	if tparent == nil || !tparent.dir {
		return afc.StatusObjectNotFound
	}
	n := fparent.children[fname]
	if src, dst := cleanPath(from), cleanPath(to); n.dir && (dst == src || strings.HasPrefix(dst, src+"/")) {
		if dst == src {
			return afc.StatusSuccess
		}
		return afc.StatusInvalidArg // a directory into itself
	}
	if old := tparent.children[tname]; old != nil && old != n {
		if old.dir != n.dir {
			if old.dir {
				return afc.StatusObjectIsDir
			}
			return afc.StatusObjectExists
		}
		if old.dir && len(old.children) > 0 {
			return afc.StatusUnknownError
		}
		fsys.unlink(old)
	}
	delete(fparent.children, fname)
	tparent.children[tname] = n
	now := time.Now()
	fparent.mtime, tparent.mtime = now, now
	return afc.StatusSuccess
}

// lock applies a flock operation for f. A conflicting lock held through
// another open file answers StatusOpWouldBlock; the caller decides whether
// to wait.
func (fsys *AFCFS) lock(f *openFile, op afc.LockOp) afc.Status {
	n := f.node
	if op&afc.LockBitUnlock != 0 {
		delete(n.locks, f)
		return afc.StatusSuccess
	}
	want := op & (afc.LockBitShared | afc.LockBitExclusive)
	if want != afc.LockBitShared && want != afc.LockBitExclusive {
		return afc.StatusInvalidArg
	}
	for holder, kind := range n.locks {
		if holder != f && (want == afc.LockBitExclusive || kind == afc.LockBitExclusive) {
			return afc.StatusOpWouldBlock
		}
	}
	if n.locks == nil {
		n.locks = map[*openFile]afc.LockOp{}
	}
	n.locks[f] = want
	return afc.StatusSuccess
}

// open counts f as an open file on n.
func (fsys *AFCFS) open(f *openFile, n *fsNode) {
	f.node = n
	n.opens++
}

// closeFile drops f's lock, and the bytes of a removed file when f was
// the last open file on it. Closing a handle, or its connection, does this.
func (fsys *AFCFS) closeFile(f *openFile) {
	n := f.node
	delete(n.locks, f)
	n.opens--
	if n.opens == 0 && n.unlinked {
		fsys.used -= int64(len(n.data))
		n.data = nil
	}
}

// infoStrings is the GetFileInfo answer for n.
func infoStrings(n *fsNode) []string {
	ifmt, nlink := "S_IFREG", 1
	size := int64(len(n.data))
	if n.dir {
		ifmt, nlink, size = "S_IFDIR", 2+len(n.children), 64
	}
	return []string{
		"st_size", fmt.Sprint(size),
		"st_blocks", fmt.Sprint((size + 511) / 512),
		"st_nlink", fmt.Sprint(nlink),
		"st_ifmt", ifmt,
		"st_mtime", fmt.Sprint(n.mtime.UnixNano()),
		"st_birthtime", fmt.Sprint(n.birth.UnixNano()),
	}
}
