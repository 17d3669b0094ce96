//go:build unix

package backup

import (
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
	h, err := c.root.OpenFile(d, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	c.handles[d] = h
	return h, nil
}

func plainName(n string) bool {
	return n != "" && n != "." && n != ".."
}
