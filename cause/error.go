package cause

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Coder is implemented by errors that know their cause. *Error is one;
// another package's typed error (a lockdown error, say) can be another, so
// that Of finds its cause without wrapping it in an *Error.
type Coder interface {
	CauseCode() Code
}

// Error is an error with its cause and the raw details a run record keeps
// next to the code.
type Error struct {
	Code Code
	// Err is what went wrong underneath; it may be nil.
	Err error
	// DeviceErrorCode and DeviceErrorText are the ErrorCode and
	// ErrorDescription of the device's final mobilebackup2 response, when
	// the cause came from there. Zero and empty otherwise.
	DeviceErrorCode int
	DeviceErrorText string
	// Errno is the system error found in Err, if any, kept so that the
	// record says "ENOSPC" and not only "host_disk_full".
	Errno syscall.Errno
}

// New returns an error with the given cause wrapping err (which may be nil).
// It records the first syscall.Errno found in err.
func New(code Code, err error) *Error {
	e := &Error{Code: code, Err: err}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		e.Errno = errno
	}
	return e
}

// Errorf is New with an error made by fmt.Errorf, so %w works.
func Errorf(code Code, format string, args ...any) *Error {
	return New(code, fmt.Errorf(format, args...))
}

// FromDevice returns the error for a mobilebackup2 final response whose
// ErrorCode is not 0, classified by FromDeviceError.
func FromDevice(errorCode int, description string) *Error {
	code := FromDeviceError(errorCode)
	if code == None {
		// ErrorCode 0 is success; a caller that still calls this has a
		// failure it cannot name.
		code = ProtocolError
	}
	return &Error{Code: code, DeviceErrorCode: errorCode, DeviceErrorText: description}
}

// FromRestoreDevice is FromDevice for a restore's final Response,
// classified by FromRestoreDeviceError.
func FromRestoreDevice(errorCode int, description string) *Error {
	e := FromDevice(errorCode, description)
	if c := FromRestoreDeviceError(errorCode); c != None {
		e.Code = c
	}
	return e
}

// Error reads "code: what went wrong", with the device's own words when
// there are any.
func (e *Error) Error() string {
	var b strings.Builder
	code := e.Code
	if code == None {
		code = Unknown
	}
	b.WriteString(string(code))
	if e.DeviceErrorCode != 0 || e.DeviceErrorText != "" {
		fmt.Fprintf(&b, " (device error %d", e.DeviceErrorCode)
		if e.DeviceErrorText != "" {
			fmt.Fprintf(&b, ": %s", e.DeviceErrorText)
		}
		b.WriteString(")")
	}
	switch {
	case e.Err != nil:
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	case e.DeviceErrorCode == 0 && e.DeviceErrorText == "":
		b.WriteString(": ")
		b.WriteString(Lookup(code).Summary)
	}
	return b.String()
}

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.Err }

// CauseCode returns e's code, so *Error is a Coder.
func (e *Error) CauseCode() Code { return e.Code }

// precedence orders the causes from most to least specific. When an error
// tree holds several causes, the one that comes first here is the one the
// person needs to hear: it is the root, and the others are what followed
// from it. Reasons for the order:
//
//   - usbmuxd_unavailable comes first because it is only ever attached to
//     the connection to usbmuxd itself: an EACCES under it is about the
//     socket, not the backup folder.
//   - Host storage comes next: when a write fails the device is told so
//     and usually hangs up, so a disk-full under a disconnect is the disk.
//   - Then what the device said in words (its final ErrorCode), then the
//     trust and lock states lockdown reports: each names one fix. The
//     restore's own checks (backup_incomplete, ios_too_old) sit beside
//     the device codes they stand in for.
//   - battery_low and device_busy are checked before a backup starts.
//   - verify_failed describes a finished transfer, so anything the device
//     or host said before it is more specific.
//   - interrupted (backupd stopped) explains the disconnect and stall it
//     causes; cable_unstable explains a disconnect; a stall that we gave up
//     on ends in a disconnect, not the other way round.
//   - recent, quiet_hours and not_encrypted are the daemon's own decisions
//     not to start a backup; they never sit in an error tree beside
//     another cause.
//   - slow_link is a warning, rarely the reason a backup failed.
//   - protocol_error and unknown are what is left when nothing else fits.
func precedence() []Code {
	return []Code{
		UsbmuxdUnavailable,
		HostDiskFull,
		HostNotWritable,
		WrongBackupPassword,
		PasscodeNotEntered,
		FindMyEnabled,
		RestoreNeedsReboot,
		DeviceSnapshotFailed,
		CorruptBackup,
		DeviceUploadErrors,
		BackupIncomplete,
		DeviceInSetup,
		IOSUnsupported,
		IOSTooOld,
		TrustDenied,
		TrustPending,
		PairingInvalid,
		NotPaired,
		DeviceLocked,
		BatteryLow,
		DeviceBusy,
		VerifyFailed,
		Interrupted,
		CableUnstable,
		Stalled,
		Disconnected,
		Recent,
		QuietHours,
		NotEncrypted,
		SlowLink,
		ProtocolError,
		Unknown,
	}
}

// rank is a code's place in precedence: lower is more specific. Codes this
// version does not know rank with Unknown, None after everything.
func rank(c Code) int {
	p := precedence()
	if c == None {
		return len(p) + 1
	}
	for i, pc := range p {
		if pc == c {
			return i
		}
	}
	return len(p) - 1
}

// MostSpecific returns the most specific of codes (see the precedence
// above), or None when there are none. Between two codes of equal rank
// (two codes this version does not know) the first wins.
func MostSpecific(codes ...Code) Code {
	best := None
	for _, c := range codes {
		if rank(c) < rank(best) {
			best = c
		}
	}
	return best
}

// maxNodes bounds the walk of an error tree, against a cyclic or absurdly
// deep chain built by mistake.
const maxNodes = 1000

// node is one classified point in an error tree.
type node struct {
	code  Code
	cause *Error        // set when the code came from an *Error
	errno syscall.Errno // set when the code came from a syscall.Errno
}

// walk visits err and everything it wraps (Unwrap() error and
// Unwrap() []error), depth first, and returns every cause it finds.
func walk(err error) []node {
	var found []node
	stack := []error{err}
	for visited := 0; len(stack) > 0 && visited < maxNodes; visited++ {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if e == nil {
			continue
		}
		if pe, ok := e.(*Error); ok && pe == nil {
			continue // a typed nil: calling its methods would panic
		}
		switch v := e.(type) {
		case *Error:
			found = append(found, node{code: v.Code, cause: v})
		case Coder:
			found = append(found, node{code: v.CauseCode()})
		case syscall.Errno:
			if c := FromErrno(v); c != None {
				found = append(found, node{code: c, errno: v})
			}
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			stack = append(stack, u.Unwrap())
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			// Push in reverse so the first joined error is visited first.
			for i := len(errs) - 1; i >= 0; i-- {
				stack = append(stack, errs[i])
			}
		}
	}
	for i := range found {
		if found[i].code == None {
			found[i].code = Unknown
		}
	}
	return found
}

// Of returns the most specific cause anywhere in err's tree: codes of
// *Error and other Coder values, and syscall errors that FromErrno knows.
// It returns None for a nil error and Unknown when nothing in the tree
// names a cause.
func Of(err error) Code {
	if err == nil {
		return None
	}
	best := None
	for _, n := range walk(err) {
		best = MostSpecific(best, n.code)
	}
	if best == None {
		return Unknown
	}
	return best
}

// Classify returns err as an *Error whose Code is Of(err), wrapping err,
// with the device's error code and text and the errno taken from the part
// of the tree that gave that cause (or, failing that, from anywhere in it).
// It returns nil for a nil error. The daemon stores the result in the run
// record.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	nodes := walk(err)
	best := None
	for _, n := range nodes {
		best = MostSpecific(best, n.code)
	}
	if best == None {
		best = Unknown
	}
	out := &Error{Code: best, Err: err}
	// Details from the winning cause first, then from any other.
	for pass := 0; pass < 2; pass++ {
		for _, n := range nodes {
			if pass == 0 && n.code != best {
				continue
			}
			if n.cause != nil && out.DeviceErrorCode == 0 && out.DeviceErrorText == "" {
				out.DeviceErrorCode = n.cause.DeviceErrorCode
				out.DeviceErrorText = n.cause.DeviceErrorText
			}
			if out.Errno == 0 {
				switch {
				case n.errno != 0:
					out.Errno = n.errno
				case n.cause != nil && n.cause.Errno != 0:
					out.Errno = n.cause.Errno
				}
			}
		}
	}
	if out.Errno == 0 {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			out.Errno = errno
		}
	}
	return out
}
