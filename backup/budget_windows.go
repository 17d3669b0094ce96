//go:build windows

package backup

import "syscall"

// errNoSpace is ERROR_DISK_FULL, what a full volume gives.
var errNoSpace error = syscall.Errno(112)

// freeInodes: NTFS has no inode count to run out of.
func freeInodes(string) (free, total uint64, ok bool) { return 0, 0, false }
