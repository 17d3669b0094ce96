package usbmux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/backupd/backupd/cause"
)

// Lockdown error strings, as a device puts them in a reply's Error field.
// A *LockdownError with one of these unwraps to the matching sentinel, so
// errors.Is(err, ErrPasswordProtected) works however deeply err wraps it.
var (
	ErrPasswordProtected            = errors.New("PasswordProtected")
	ErrUserDeniedPairing            = errors.New("UserDeniedPairing")
	ErrPairingDialogResponsePending = errors.New("PairingDialogResponsePending")
	ErrInvalidHostID                = errors.New("InvalidHostID")
	ErrSessionInactive              = errors.New("SessionInactive")
	ErrInvalidService               = errors.New("InvalidService")
	ErrServiceProhibited            = errors.New("ServiceProhibited")
	ErrEscrowLocked                 = errors.New("EscrowLocked")
	ErrMissingValue                 = errors.New("MissingValue")
	ErrGetProhibited                = errors.New("GetProhibited")
	ErrInvalidPairRecord            = errors.New("InvalidPairRecord")
)

func lockdownSentinel(code string) error {
	for _, e := range []error{
		ErrPasswordProtected, ErrUserDeniedPairing, ErrPairingDialogResponsePending,
		ErrInvalidHostID, ErrSessionInactive, ErrInvalidService, ErrServiceProhibited,
		ErrEscrowLocked, ErrMissingValue, ErrGetProhibited, ErrInvalidPairRecord,
	} {
		if e.Error() == code {
			return e
		}
	}
	return nil
}

// LockdownError is a reply from lockdownd that carried an Error.
type LockdownError struct {
	// Request is the request the device refused.
	Request string
	// Code is the device's Error string, verbatim.
	Code string
}

func (e *LockdownError) Error() string {
	return fmt.Sprintf("lockdown %s: device answered %s", e.Request, e.Code)
}

// Unwrap returns the sentinel for a known error string, or nil.
func (e *LockdownError) Unwrap() error { return lockdownSentinel(e.Code) }

// CauseCode maps the device's error to a backupd cause.
func (e *LockdownError) CauseCode() cause.Code { return cause.FromLockdown(e.Code) }

// MuxResultError is a usbmuxd Result other than 0.
type MuxResultError struct {
	// Request is the usbmux MessageType that was refused.
	Request string
	// Number is usbmuxd's result: 1 bad command, 2 no such device (or no
	// pair record, as ENOENT is also 2), 3 connection refused, or an errno.
	Number uint64
}

// usbmuxd Result numbers (usbmuxd's RESULT_* and libusbmuxd's names).
const (
	muxResultOK         = 0
	muxResultBadCommand = 1
	muxResultBadDevice  = 2
	muxResultRefused    = 3
)

func (e *MuxResultError) Error() string {
	what := ""
	switch e.Number {
	case muxResultBadCommand:
		what = " (bad command)"
	case muxResultBadDevice:
		what = " (no such device)"
	case muxResultRefused:
		what = " (connection refused)"
	}
	return fmt.Sprintf("usbmuxd %s: result %d%s", e.Request, e.Number, what)
}

// CauseCode: a Connect to a device usbmuxd no longer has means the device
// went away between the event and the request; anything else is a
// request usbmuxd did not like, which is our bug or its.
func (e *MuxResultError) CauseCode() cause.Code {
	if e.Request == "Connect" && e.Number == muxResultBadDevice {
		return cause.Disconnected
	}
	return cause.ProtocolError
}

// deadliner is the part of net.Conn that deadlines need.
type deadliner interface{ SetDeadline(time.Time) error }

// bindDeadline applies the earlier of ctx's deadline and now+timeout to c,
// and cuts blocked I/O short when ctx is cancelled. The returned func
// clears both; it waits for a cancellation already in flight so that it
// cannot land on a later exchange. A zero timeout adds no bound of its own.
func bindDeadline(ctx context.Context, c deadliner, timeout time.Duration) func() {
	dl, ok := ctx.Deadline()
	if timeout > 0 {
		if t := time.Now().Add(timeout); !ok || t.Before(dl) {
			dl = t
		}
	}
	_ = c.SetDeadline(dl)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		// A time in the past wakes every blocked Read and Write at once.
		_ = c.SetDeadline(time.Unix(1, 0))
	})
	return func() {
		if !stop() {
			<-fired
		}
		_ = c.SetDeadline(time.Time{})
	}
}

// ioFailure wraps an I/O error of an exchange with what it means: the
// context's error when that is what cut it short (a cancelled caller is
// not a cause to report), else code.
func ioFailure(ctx context.Context, code cause.Code, what string, err error) error {
	cerr := ctx.Err()
	if dl, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(dl) {
		// The connection's deadline, which is ctx's, fired a moment
		// before ctx's own timer.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil {
		if errors.Is(cerr, context.Canceled) {
			return fmt.Errorf("%s: %w: %w", what, cerr, err)
		}
		return cause.New(code, fmt.Errorf("%s: %w: %w", what, cerr, err))
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return cause.New(code, fmt.Errorf("%s: no answer in time: %w", what, err))
	}
	return cause.New(code, fmt.Errorf("%s: %w", what, err))
}

// protocolError marks odd or malformed input from usbmuxd or the device.
func protocolError(format string, args ...any) error {
	return cause.Errorf(cause.ProtocolError, format, args...)
}
