package cause

import "syscall"

// Windows reports file-system errors as Win32 error codes, not the errno
// values Go defines for portability, so the table names the real codes.
const (
	errorAccessDenied      syscall.Errno = 5
	errorWriteProtect      syscall.Errno = 19
	errorHandleDiskFull    syscall.Errno = 39
	errorDiskFull          syscall.Errno = 112
	errorDiskQuotaExceeded syscall.Errno = 1295
	errorPrivilegeNotHeld  syscall.Errno = 1314
)

func fromErrno(errno syscall.Errno) Code {
	switch errno {
	case errorHandleDiskFull, errorDiskFull, errorDiskQuotaExceeded:
		return HostDiskFull
	case errorAccessDenied, errorWriteProtect, errorPrivilegeNotHeld:
		return HostNotWritable
	}
	return None
}
