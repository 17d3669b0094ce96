//go:build unix

package cause

import (
	"syscall"
	"testing"
)

// Errors the platform-neutral tests use, as this platform spells them.
const (
	errDiskFull    = syscall.ENOSPC
	errNotWritable = syscall.EACCES
	errNotACause   = syscall.ENOENT
)

func TestFromErrno(t *testing.T) {
	tests := []struct {
		errno syscall.Errno
		want  Code
	}{
		{syscall.ENOSPC, HostDiskFull},
		{syscall.EDQUOT, HostDiskFull},
		{syscall.EACCES, HostNotWritable},
		{syscall.EPERM, HostNotWritable},
		{syscall.EROFS, HostNotWritable},
		{syscall.ENOENT, None},
		{syscall.EIO, None},
		{syscall.ECONNRESET, None},
		{0, None},
	}
	for _, tt := range tests {
		if got := FromErrno(tt.errno); got != tt.want {
			t.Errorf("FromErrno(%v) = %q, want %q", tt.errno, got, tt.want)
		}
	}
}
