package devicelink

import (
	"errors"
	"io/fs"
	"syscall"
)

// DeviceLink status and file error codes. They are negated errno values of
// the platform where the protocol was born, so they must not be derived
// from the local errno numbers.
const (
	CodeSuccess     int64 = 0
	CodeGeneric     int64 = -1
	CodeNoEntry     int64 = -6  // ENOENT
	CodeExists      int64 = -7  // EEXIST
	CodeNotDir      int64 = -8  // ENOTDIR
	CodeIsDir       int64 = -9  // EISDIR
	CodeLoop        int64 = -10 // ELOOP
	CodeIO          int64 = -11 // EIO
	CodeMultiStatus int64 = -13 // per-file errors in the payload
	CodeNoSpace     int64 = -15 // ENOSPC
)

// ErrorCode maps an error from a file operation to its DeviceLink code:
// nil is CodeSuccess, unknown errors are CodeGeneric.
func ErrorCode(err error) int64 {
	switch {
	case err == nil:
		return CodeSuccess
	case errors.Is(err, fs.ErrNotExist):
		return CodeNoEntry
	case errors.Is(err, fs.ErrExist):
		return CodeExists
	case errors.Is(err, syscall.ENOTDIR):
		return CodeNotDir
	case errors.Is(err, syscall.EISDIR):
		return CodeIsDir
	case errors.Is(err, syscall.ELOOP):
		return CodeLoop
	case errors.Is(err, syscall.EIO):
		return CodeIO
	case errors.Is(err, syscall.ENOSPC):
		return CodeNoSpace
	}
	return CodeGeneric
}
