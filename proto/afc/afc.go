// Package afc speaks Apple File Conduit (the com.apple.afc lockdown
// service): the packet codec shared by the simulated device and our host,
// the operation and status numbers, and a small host client with what a
// backup needs — chiefly taking and releasing the sync lock file
// /com.apple.itunes.lock_sync, whose refusal means another tool holds the
// phone.
//
// Every decoder bounds what a peer can make us allocate and turns malformed
// input into an error; nothing here panics on what arrives from the wire.
package afc

import (
	"errors"
	"fmt"
)

// Opcode is the operation field of an AFC packet header.
type Opcode uint64

// Operation numbers, as the device and libimobiledevice number them.
const (
	OpInvalid               Opcode = 0x00
	OpStatus                Opcode = 0x01
	OpData                  Opcode = 0x02
	OpReadDir               Opcode = 0x03
	OpReadFile              Opcode = 0x04
	OpWriteFile             Opcode = 0x05
	OpWritePart             Opcode = 0x06
	OpTruncate              Opcode = 0x07
	OpRemovePath            Opcode = 0x08
	OpMakeDir               Opcode = 0x09
	OpGetFileInfo           Opcode = 0x0A
	OpGetDeviceInfo         Opcode = 0x0B
	OpWriteFileAtomic       Opcode = 0x0C
	OpFileOpen              Opcode = 0x0D
	OpFileOpenResult        Opcode = 0x0E
	OpFileRead              Opcode = 0x0F
	OpFileWrite             Opcode = 0x10
	OpFileSeek              Opcode = 0x11
	OpFileTell              Opcode = 0x12
	OpFileTellResult        Opcode = 0x13
	OpFileClose             Opcode = 0x14
	OpFileSetSize           Opcode = 0x15
	OpGetConnectionInfo     Opcode = 0x16
	OpSetConnectionOptions  Opcode = 0x17
	OpRenamePath            Opcode = 0x18
	OpSetFSBlockSize        Opcode = 0x19
	OpSetSocketBlockSize    Opcode = 0x1A
	OpFileLock              Opcode = 0x1B
	OpMakeLink              Opcode = 0x1C
	OpGetFileHash           Opcode = 0x1D
	OpSetFileModTime        Opcode = 0x1E
	OpGetFileHashRange      Opcode = 0x1F
	OpFileSetImmutableHint  Opcode = 0x20
	OpGetSizeOfPathContents Opcode = 0x21
	OpRemovePathAndContents Opcode = 0x22
	OpDirOpen               Opcode = 0x23
	OpDirOpenResult         Opcode = 0x24
	OpDirRead               Opcode = 0x25
	OpDirClose              Opcode = 0x26
	OpFileReadOffset        Opcode = 0x27
	OpFileWriteOffset       Opcode = 0x28
)

var opNames = map[Opcode]string{
	OpInvalid: "Invalid", OpStatus: "Status", OpData: "Data",
	OpReadDir: "ReadDir", OpReadFile: "ReadFile", OpWriteFile: "WriteFile",
	OpWritePart: "WritePart", OpTruncate: "Truncate",
	OpRemovePath: "RemovePath", OpMakeDir: "MakeDir",
	OpGetFileInfo: "GetFileInfo", OpGetDeviceInfo: "GetDeviceInfo",
	OpWriteFileAtomic: "WriteFileAtomic", OpFileOpen: "FileOpen",
	OpFileOpenResult: "FileOpenResult", OpFileRead: "FileRead",
	OpFileWrite: "FileWrite", OpFileSeek: "FileSeek", OpFileTell: "FileTell",
	OpFileTellResult: "FileTellResult", OpFileClose: "FileClose",
	OpFileSetSize: "FileSetSize", OpGetConnectionInfo: "GetConnectionInfo",
	OpSetConnectionOptions: "SetConnectionOptions",
	OpRenamePath:           "RenamePath", OpSetFSBlockSize: "SetFSBlockSize",
	OpSetSocketBlockSize: "SetSocketBlockSize", OpFileLock: "FileLock",
	OpMakeLink: "MakeLink", OpGetFileHash: "GetFileHash",
	OpSetFileModTime: "SetFileModTime", OpGetFileHashRange: "GetFileHashRange",
	OpFileSetImmutableHint:  "FileSetImmutableHint",
	OpGetSizeOfPathContents: "GetSizeOfPathContents",
	OpRemovePathAndContents: "RemovePathAndContents",
	OpDirOpen:               "DirOpen", OpDirOpenResult: "DirOpenResult",
	OpDirRead: "DirRead", OpDirClose: "DirClose",
	OpFileReadOffset: "FileReadOffset", OpFileWriteOffset: "FileWriteOffset",
}

func (o Opcode) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return fmt.Sprintf("Opcode(0x%x)", uint64(o))
}

// Status is the code a device answers in an OpStatus packet.
type Status uint64

// Status codes (AFC_E_* in libimobiledevice).
const (
	StatusSuccess             Status = 0
	StatusUnknownError        Status = 1
	StatusOpHeaderInvalid     Status = 2
	StatusNoResources         Status = 3
	StatusReadError           Status = 4
	StatusWriteError          Status = 5
	StatusUnknownPacketType   Status = 6
	StatusInvalidArg          Status = 7
	StatusObjectNotFound      Status = 8
	StatusObjectIsDir         Status = 9
	StatusPermDenied          Status = 10
	StatusServiceNotConnected Status = 11
	StatusOpTimeout           Status = 12
	StatusTooMuchData         Status = 13
	StatusEndOfData           Status = 14
	StatusOpNotSupported      Status = 15
	StatusObjectExists        Status = 16
	StatusObjectBusy          Status = 17
	StatusNoSpaceLeft         Status = 18
	StatusOpWouldBlock        Status = 19
	StatusIOError             Status = 20
	StatusOpInterrupted       Status = 21
	StatusOpInProgress        Status = 22
	StatusInternalError       Status = 23
	StatusMuxError            Status = 30
	StatusNoMem               Status = 31
	StatusNotEnoughData       Status = 32
	StatusDirNotEmpty         Status = 33
)

var statusNames = map[Status]string{
	StatusSuccess: "success", StatusUnknownError: "unknown error",
	StatusOpHeaderInvalid: "operation header invalid",
	StatusNoResources:     "no resources", StatusReadError: "read error",
	StatusWriteError: "write error", StatusUnknownPacketType: "unknown packet type",
	StatusInvalidArg: "invalid argument", StatusObjectNotFound: "object not found",
	StatusObjectIsDir: "object is a directory", StatusPermDenied: "permission denied",
	StatusServiceNotConnected: "service not connected",
	StatusOpTimeout:           "operation timed out", StatusTooMuchData: "too much data",
	StatusEndOfData: "end of data", StatusOpNotSupported: "operation not supported",
	StatusObjectExists: "object exists", StatusObjectBusy: "object busy",
	StatusNoSpaceLeft: "no space left", StatusOpWouldBlock: "operation would block",
	StatusIOError: "I/O error", StatusOpInterrupted: "operation interrupted",
	StatusOpInProgress: "operation in progress", StatusInternalError: "internal error",
	StatusMuxError: "mux error", StatusNoMem: "out of memory",
	StatusNotEnoughData: "not enough data", StatusDirNotEmpty: "directory not empty",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status %d", uint64(s))
}

// FileMode is the mode argument of OpFileOpen (AFC_FOPEN_*). The comments
// give the fopen(3) equivalent the device applies.
type FileMode uint64

// File open modes.
const (
	ModeReadOnly   FileMode = 1 // r
	ModeReadWrite  FileMode = 2 // r+, but creates a missing file
	ModeWriteOnly  FileMode = 3 // w
	ModeWriteRead  FileMode = 4 // w+
	ModeAppend     FileMode = 5 // a
	ModeReadAppend FileMode = 6 // a+
)

// LockOp is the operation argument of OpFileLock: flock(2) bits, where 4
// is LOCK_NB. Hosts use the non-blocking forms so a held lock answers
// StatusOpWouldBlock instead of hanging the connection.
type LockOp uint64

// Lock operations (AFC_LOCK_*).
const (
	LockShared    LockOp = 1 | 4
	LockExclusive LockOp = 2 | 4
	LockUnlock    LockOp = 8 | 4
)

// flock(2) bits inside a LockOp.
const (
	LockBitShared    LockOp = 1
	LockBitExclusive LockOp = 2
	LockBitNonBlock  LockOp = 4
	LockBitUnlock    LockOp = 8
)

// SyncLockPath is the file iTunes, Finder and libimobiledevice lock to tell
// the device, and each other, that a sync or backup is under way.
const SyncLockPath = "/com.apple.itunes.lock_sync"

// Sentinel errors a StatusError unwraps to, for the statuses a caller acts
// on. Test with errors.Is.
var (
	ErrWouldBlock  = errors.New("afc: operation would block")
	ErrNotFound    = errors.New("afc: object not found")
	ErrExists      = errors.New("afc: object exists")
	ErrIsDir       = errors.New("afc: object is a directory")
	ErrPermission  = errors.New("afc: permission denied")
	ErrBusy        = errors.New("afc: object busy")
	ErrNoSpace     = errors.New("afc: no space left on device")
	ErrDirNotEmpty = errors.New("afc: directory not empty")
	ErrInvalidArg  = errors.New("afc: invalid argument")
	ErrUnsupported = errors.New("afc: operation not supported")
)

var statusSentinels = map[Status]error{
	StatusOpWouldBlock:      ErrWouldBlock,
	StatusObjectNotFound:    ErrNotFound,
	StatusObjectExists:      ErrExists,
	StatusObjectIsDir:       ErrIsDir,
	StatusPermDenied:        ErrPermission,
	StatusObjectBusy:        ErrBusy,
	StatusNoSpaceLeft:       ErrNoSpace,
	StatusDirNotEmpty:       ErrDirNotEmpty,
	StatusInvalidArg:        ErrInvalidArg,
	StatusOpNotSupported:    ErrUnsupported,
	StatusUnknownPacketType: ErrUnsupported,
}

// StatusError is a non-success status the device answered to Op.
type StatusError struct {
	Op     Opcode
	Status Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("afc %s: %s (status %d)", e.Op, e.Status, uint64(e.Status))
}

// Unwrap returns the sentinel for the status, if there is one, so that
// errors.Is(err, ErrWouldBlock) works through any wrapping.
func (e *StatusError) Unwrap() error { return statusSentinels[e.Status] }
