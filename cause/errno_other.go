//go:build !unix && !windows

package cause

import "syscall"

// On other platforms (wasm, plan9) backupd does not run; nothing is
// classified.
func fromErrno(syscall.Errno) Code { return None }
