package cause

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// designCodes are the codes of design.md's table plus the ones this
// package adds; the test keeps the catalogue from losing any.
var designCodes = []Code{
	"usbmuxd_unavailable", "trust_pending", "trust_denied", "device_locked",
	"pairing_invalid", "passcode_not_entered", "wrong_backup_password",
	"device_snapshot_failed", "host_disk_full", "host_not_writable",
	"cable_unstable", "disconnected", "slow_link", "device_busy",
	"battery_low", "stalled", "ios_unsupported", "interrupted",
	"protocol_error",
	"not_paired", "unknown", "device_in_setup", "corrupt_backup",
	"verify_failed", "recent", "quiet_hours", "not_encrypted",
	"find_my_enabled", "restore_needs_reboot", "ios_too_old", "backup_incomplete",
	"device_upload_errors",
}

func TestCatalogueComplete(t *testing.T) {
	all := All()
	if len(all) != len(designCodes) {
		t.Errorf("All() has %d causes, want %d", len(all), len(designCodes))
	}
	seen := map[Code]bool{}
	codeShape := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	for _, in := range all {
		if seen[in.Code] {
			t.Errorf("%s listed twice", in.Code)
		}
		seen[in.Code] = true
		if !codeShape.MatchString(string(in.Code)) {
			t.Errorf("code %q is not snake_case", in.Code)
		}
		if in.Summary == "" || in.Fix == "" {
			t.Errorf("%s: empty summary or fix", in.Code)
		}
		for _, s := range []string{in.Summary, in.Fix} {
			if !strings.HasSuffix(s, ".") {
				t.Errorf("%s: %q does not end a sentence", in.Code, s)
			}
			if strings.ContainsAny(s, "\n|") {
				t.Errorf("%s: %q has a newline or a pipe", in.Code, s)
			}
		}
		switch in.Severity {
		case SeverityInfo, SeverityWarning, SeverityError:
		default:
			t.Errorf("%s: severity %q", in.Code, in.Severity)
		}
		if !in.Code.Known() {
			t.Errorf("%s: Known() = false", in.Code)
		}
		if got := Lookup(in.Code); got != in {
			t.Errorf("Lookup(%s) = %+v, want %+v", in.Code, got, in)
		}
	}
	for _, c := range designCodes {
		if !seen[c] {
			t.Errorf("%s missing from All()", c)
		}
	}
}

func TestAllIsStableAndACopy(t *testing.T) {
	a := All()
	a[0].Summary = "changed by a caller"
	b := All()
	if b[0].Summary == "changed by a caller" {
		t.Fatal("a caller changed the catalogue")
	}
	if a[0].Code != b[0].Code || a[len(a)-1].Code != Unknown {
		t.Fatalf("order changed: first %s/%s, last %s", a[0].Code, b[0].Code, a[len(a)-1].Code)
	}
}

func TestLookupUnknownCodeKeepsCode(t *testing.T) {
	in := Lookup("from_the_future")
	if in.Code != "from_the_future" {
		t.Errorf("Code = %q", in.Code)
	}
	if in.Summary != Lookup(Unknown).Summary || in.Fix == "" {
		t.Errorf("got %+v, want Unknown's sentences", in)
	}
	if Code("from_the_future").Known() {
		t.Error("Known() = true for a made-up code")
	}
}

func TestTransientAndSeverity(t *testing.T) {
	tests := []struct {
		code      Code
		transient bool
		severity  Severity
	}{
		{Disconnected, true, SeverityWarning},
		{Interrupted, true, SeverityInfo},
		{Stalled, true, SeverityWarning},
		{TrustPending, false, SeverityWarning},
		{TrustDenied, false, SeverityError},
		{HostDiskFull, false, SeverityError},
		{WrongBackupPassword, false, SeverityError},
		{CableUnstable, false, SeverityWarning},
		{SlowLink, true, SeverityWarning},
	}
	for _, tt := range tests {
		in := Lookup(tt.code)
		if in.Transient != tt.transient || in.Severity != tt.severity {
			t.Errorf("%s: transient %v severity %s, want %v %s", tt.code, in.Transient, in.Severity, tt.transient, tt.severity)
		}
	}
}

func TestPrecedenceCoversEveryCode(t *testing.T) {
	p := precedence()
	if len(p) != len(All()) {
		t.Fatalf("precedence has %d codes, catalogue %d", len(p), len(All()))
	}
	seen := map[Code]bool{}
	for _, c := range p {
		if seen[c] || !c.Known() {
			t.Errorf("precedence: %s repeated or unknown", c)
		}
		seen[c] = true
	}
	if p[len(p)-1] != Unknown {
		t.Error("unknown must be the least specific")
	}
}

func TestMostSpecific(t *testing.T) {
	tests := []struct {
		name  string
		codes []Code
		want  Code
	}{
		{"none", nil, None},
		{"only none", []Code{None, None}, None},
		{"one", []Code{Disconnected}, Disconnected},
		{"disk full beats disconnect", []Code{Disconnected, HostDiskFull}, HostDiskFull},
		{"device words beat disconnect", []Code{Disconnected, PasscodeNotEntered}, PasscodeNotEntered},
		{"interrupted beats stall", []Code{Stalled, Interrupted}, Interrupted},
		{"stall beats disconnect", []Code{Disconnected, Stalled}, Stalled},
		{"anything beats protocol error", []Code{ProtocolError, SlowLink}, SlowLink},
		{"unknown loses", []Code{Unknown, ProtocolError}, ProtocolError},
		{"unregistered ranks with unknown", []Code{"new_thing", Disconnected}, Disconnected},
		{"usbmuxd beats not writable", []Code{HostNotWritable, UsbmuxdUnavailable}, UsbmuxdUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MostSpecific(tt.codes...); got != tt.want {
				t.Errorf("MostSpecific(%v) = %q, want %q", tt.codes, got, tt.want)
			}
		})
	}
}

// lockdownErr stands for another package's typed error that knows its cause.
type lockdownErr struct{ s string }

func (e lockdownErr) Error() string   { return "lockdown: " + e.s }
func (e lockdownErr) CauseCode() Code { return FromLockdown(e.s) }

func TestOf(t *testing.T) {
	enospc := &os.PathError{Op: "write", Path: "/b/x", Err: errDiskFull}
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"nil", nil, None},
		{"plain", errors.New("boom"), Unknown},
		{"EOF", io.EOF, Unknown},
		{"cause", New(Stalled, nil), Stalled},
		{"wrapped by fmt", fmt.Errorf("backup: %w", New(DeviceBusy, nil)), DeviceBusy},
		{"raw ENOSPC", enospc, HostDiskFull},
		{"raw errno wrapped", fmt.Errorf("x: %w", errDiskFull), HostDiskFull},
		{"raw EACCES", &os.PathError{Op: "open", Path: "/b", Err: errNotWritable}, HostNotWritable},
		{"ENOENT is not a cause", &os.PathError{Op: "open", Path: "/b", Err: errNotACause}, Unknown},
		{"ENOSPC inside disconnect", New(Disconnected, fmt.Errorf("upload: %w", enospc)), HostDiskFull},
		{"explicit disk full inside disconnect", New(Disconnected, New(HostDiskFull, nil)), HostDiskFull},
		{"disconnect inside protocol error", New(ProtocolError, New(Disconnected, io.ErrUnexpectedEOF)), Disconnected},
		{"EACCES under usbmuxd", New(UsbmuxdUnavailable, &os.PathError{Op: "dial", Path: "/var/run/usbmuxd", Err: errNotWritable}), UsbmuxdUnavailable},
		{"joined", errors.Join(New(Disconnected, nil), New(PasscodeNotEntered, nil)), PasscodeNotEntered},
		{"joined deep", fmt.Errorf("a: %w", errors.Join(io.EOF, fmt.Errorf("b: %w", enospc))), HostDiskFull},
		{"coder", fmt.Errorf("start session: %w", lockdownErr{"PasswordProtected"}), DeviceLocked},
		{"device error", FromDevice(208, "passcode"), PasscodeNotEntered},
		{"empty code", &Error{Err: io.EOF}, Unknown},
		{"typed nil inside", fmt.Errorf("x: %w", (*Error)(nil)), Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.err); got != tt.want {
				t.Errorf("Of(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// cyclic unwraps to itself forever.
type cyclic struct{}

func (c *cyclic) Error() string { return "cyclic" }
func (c *cyclic) Unwrap() error { return c }

func TestOfCyclicTerminates(t *testing.T) {
	if got := Of(&cyclic{}); got != Unknown {
		t.Errorf("Of(cyclic) = %q", got)
	}
}

func TestNewRecordsErrno(t *testing.T) {
	e := New(Disconnected, fmt.Errorf("write: %w", &os.PathError{Op: "write", Path: "/x", Err: errDiskFull}))
	if e.Errno != errDiskFull {
		t.Errorf("Errno = %v", e.Errno)
	}
	if !errors.Is(e, errDiskFull) {
		t.Error("errors.Is does not see through *Error")
	}
	var pe *os.PathError
	if !errors.As(e, &pe) || pe.Path != "/x" {
		t.Error("errors.As does not see through *Error")
	}
}

func TestClassify(t *testing.T) {
	enospc := &os.PathError{Op: "write", Path: "/b/x", Err: errDiskFull}
	tests := []struct {
		name      string
		err       error
		code      Code
		devCode   int
		devText   string
		errno     syscall.Errno
		wantIsNil bool
	}{
		{name: "nil", err: nil, wantIsNil: true},
		{name: "plain", err: io.EOF, code: Unknown},
		{name: "raw errno", err: enospc, code: HostDiskFull, errno: errDiskFull},
		{name: "device", err: fmt.Errorf("backup: %w", FromDevice(207, "wrong password")), code: WrongBackupPassword, devCode: 207, devText: "wrong password"},
		{
			name: "device details from the winner",
			err: errors.Join(
				&Error{Code: ProtocolError, DeviceErrorCode: 999, DeviceErrorText: "odd"},
				FromDevice(105, "no space"),
			),
			code: HostDiskFull, devCode: 105, devText: "no space",
		},
		{
			name: "errno from elsewhere in the tree",
			err:  New(Disconnected, fmt.Errorf("x: %w", errNotACause)),
			code: Disconnected, errno: errNotACause,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err)
			if tt.wantIsNil {
				if got != nil {
					t.Fatalf("Classify(nil) = %v", got)
				}
				return
			}
			if got.Code != tt.code || got.DeviceErrorCode != tt.devCode || got.DeviceErrorText != tt.devText || got.Errno != tt.errno {
				t.Errorf("got code %q dev %d %q errno %v; want %q %d %q %v",
					got.Code, got.DeviceErrorCode, got.DeviceErrorText, got.Errno,
					tt.code, tt.devCode, tt.devText, tt.errno)
			}
			if !errors.Is(got, tt.err) {
				t.Error("Classify does not wrap the original error")
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{New(Stalled, errors.New("no progress for 5m0s")), "stalled: no progress for 5m0s"},
		{New(HostDiskFull, nil), "host_disk_full: " + Lookup(HostDiskFull).Summary},
		{FromDevice(208, "Passcode not entered"), "passcode_not_entered (device error 208: Passcode not entered)"},
		{FromDevice(42, ""), "protocol_error (device error 42)"},
		{&Error{Err: io.EOF}, "unknown: EOF"},
		{Errorf(Disconnected, "read: %w", io.ErrUnexpectedEOF), "disconnected: read: unexpected EOF"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	if !errors.Is(Errorf(Disconnected, "read: %w", io.ErrUnexpectedEOF), io.ErrUnexpectedEOF) {
		t.Error("Errorf does not wrap with %w")
	}
}

func TestFromDeviceError(t *testing.T) {
	tests := []struct {
		code int
		want Code
	}{
		{0, None},
		{3, DeviceSnapshotFailed},
		{104, DeviceUploadErrors},
		{105, HostDiskFull},
		{205, CorruptBackup},
		{207, WrongBackupPassword},
		{208, PasscodeNotEntered},
		{212, DeviceInSetup},
		{1, ProtocolError},
		{-1, ProtocolError},
		{100000, ProtocolError},
	}
	for _, tt := range tests {
		if got := FromDeviceError(tt.code); got != tt.want {
			t.Errorf("FromDeviceError(%d) = %q, want %q", tt.code, got, tt.want)
		}
	}
	if e := FromDevice(0, "odd"); e.Code != ProtocolError {
		t.Errorf("FromDevice(0) code = %q, want protocol_error", e.Code)
	}
}

func TestFromLockdown(t *testing.T) {
	tests := []struct {
		s    string
		want Code
	}{
		{"", None},
		{"PasswordProtected", DeviceLocked},
		{"EscrowLocked", DeviceLocked},
		{"UserDeniedPairing", TrustDenied},
		{"PairingDialogResponsePending", TrustPending},
		{"InvalidHostID", PairingInvalid},
		{"InvalidPairRecord", PairingInvalid},
		{"SessionInactive", ProtocolError},
		{"InvalidService", ProtocolError},
		{"SomethingNew", ProtocolError},
	}
	for _, tt := range tests {
		if got := FromLockdown(tt.s); got != tt.want {
			t.Errorf("FromLockdown(%q) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	md := Markdown()
	if md != Markdown() {
		t.Fatal("Markdown is not deterministic")
	}
	lines := strings.Split(strings.TrimSuffix(md, "\n"), "\n")
	if len(lines) != 2+len(All()) {
		t.Fatalf("%d lines, want header, rule and %d rows", len(lines), len(All()))
	}
	if lines[0] != "| Code | What happened | What to do |" || lines[1] != "|---|---|---|" {
		t.Errorf("header = %q / %q", lines[0], lines[1])
	}
	for i, in := range All() {
		row := lines[2+i]
		if !strings.HasPrefix(row, "| `"+string(in.Code)+"` | ") {
			t.Errorf("row %d = %q, want code %s", i, row, in.Code)
		}
		// Four unescaped pipes make three cells.
		if n := strings.Count(row, "|") - strings.Count(row, `\|`); n != 4 {
			t.Errorf("row %s has %d cell borders", in.Code, n)
		}
		if !strings.Contains(row, in.Fix) {
			t.Errorf("row %s lacks its fix", in.Code)
		}
	}
}

func TestCell(t *testing.T) {
	if got := cell("a|b\nc\r\nd"); got != `a\|b c d` {
		t.Errorf("cell = %q", got)
	}
}
