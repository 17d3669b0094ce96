//go:build linux || darwin

package backup

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// errNoSpace is the errno a full disk gives.
var errNoSpace error = syscall.ENOSPC

// freeInodes returns the free and total inodes of the file system holding
// dir (f_ffree, f_files); ok is false when they cannot be read.
func freeInodes(dir string) (free, total uint64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	return uint64(st.Ffree), uint64(st.Files), true
}
