//go:build unix

package cause

import "syscall"

func fromErrno(errno syscall.Errno) Code {
	switch errno {
	case syscall.ENOSPC, syscall.EDQUOT:
		return HostDiskFull
	case syscall.EACCES, syscall.EPERM, syscall.EROFS:
		return HostNotWritable
	}
	return None
}
