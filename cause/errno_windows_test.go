package cause

import (
	"syscall"
	"testing"
)

// Errors the platform-neutral tests use, as Windows spells them.
const (
	errDiskFull    = errorDiskFull
	errNotWritable = errorAccessDenied
	errNotACause   = syscall.Errno(2) // ERROR_FILE_NOT_FOUND
)

func TestFromErrno(t *testing.T) {
	tests := []struct {
		errno syscall.Errno
		want  Code
	}{
		{errorDiskFull, HostDiskFull},
		{errorHandleDiskFull, HostDiskFull},
		{errorDiskQuotaExceeded, HostDiskFull},
		{errorAccessDenied, HostNotWritable},
		{errorWriteProtect, HostNotWritable},
		{syscall.Errno(2), None},
		{0, None},
	}
	for _, tt := range tests {
		if got := FromErrno(tt.errno); got != tt.want {
			t.Errorf("FromErrno(%d) = %q, want %q", tt.errno, got, tt.want)
		}
	}
}
