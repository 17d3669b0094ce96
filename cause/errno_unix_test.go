//go:build unix

package cause

import (
	"errors"
	"fmt"
	"os"
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

// TestPrecedenceOfHostErrors: the host's own storage errors win over what
// followed from them, however they are wrapped, and the errno is kept
// beside the cause.
func TestPrecedenceOfHostErrors(t *testing.T) {
	pathErr := func(op string, errno syscall.Errno) error {
		return &os.PathError{Op: op, Path: "/backups/x", Err: errno}
	}
	tests := []struct {
		name  string
		err   error
		want  Code
		errno syscall.Errno
	}{
		{"ENOSPC in a disconnect", New(Disconnected, fmt.Errorf("upload: %w", pathErr("write", syscall.ENOSPC))), HostDiskFull, syscall.ENOSPC},
		{"EDQUOT in a stall", New(Stalled, pathErr("write", syscall.EDQUOT)), HostDiskFull, syscall.EDQUOT},
		{"EROFS", pathErr("open", syscall.EROFS), HostNotWritable, syscall.EROFS},
		{"EROFS in a disconnect", New(Disconnected, pathErr("mkdir", syscall.EROFS)), HostNotWritable, syscall.EROFS},
		{"EROFS joined with a device 105", errors.Join(FromDevice(DeviceErrHostDiskFull, "not enough space"), pathErr("rename", syscall.EROFS)), HostDiskFull, syscall.EROFS},
		{"EACCES under interrupted", New(Interrupted, pathErr("create", syscall.EACCES)), HostNotWritable, syscall.EACCES},
		{"ENOSPC beats a protocol error", New(ProtocolError, pathErr("write", syscall.ENOSPC)), HostDiskFull, syscall.ENOSPC},
		{"ENOSPC beats the device's 208", errors.Join(FromDevice(DeviceErrPasscodeRequired, ""), pathErr("write", syscall.ENOSPC)), HostDiskFull, syscall.ENOSPC},
		{"EIO is no cause: the disconnect stays", New(Disconnected, pathErr("read", syscall.EIO)), Disconnected, syscall.EIO},
		{"ECONNRESET is a disconnect's detail", New(Disconnected, syscall.ECONNRESET), Disconnected, syscall.ECONNRESET},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce := Classify(tt.err)
			if ce.Code != tt.want || Of(tt.err) != tt.want {
				t.Fatalf("Classify = %s, Of = %s; want %s", ce.Code, Of(tt.err), tt.want)
			}
			if ce.Errno != tt.errno {
				t.Fatalf("errno %v, want %v", ce.Errno, tt.errno)
			}
			if !errors.Is(ce, tt.err) {
				t.Fatal("the classified error does not wrap the original")
			}
		})
	}
}
