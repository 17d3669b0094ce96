package sim

import "time"

// FileSpec sets a device's synthetic file set: deterministic from Seed.
type FileSpec struct {
	Seed    int64
	Count   int
	MinSize int64
	MaxSize int64
	// Empty lets MinSize 0 stand, for a set with 0-byte files (real
	// iPhones hold many); otherwise MinSize 0 means 1 KiB.
	Empty bool
}

func (f *FileSpec) defaults(n int) {
	if f.Seed == 0 {
		f.Seed = int64(n)
	}
	if f.Count == 0 {
		f.Count = 200
	}
	if f.MinSize == 0 && !f.Empty {
		f.MinSize = 1 << 10
	}
	if f.MaxSize == 0 {
		f.MaxSize = 64 << 10
	}
	if f.MaxSize < f.MinSize {
		f.MaxSize = f.MinSize
	}
}

// Faults are injected per device. The zero value is a healthy device.
type Faults struct {
	// UnplugAfterBytes pulls the cable once the backup has sent this many
	// file bytes.
	UnplugAfterBytes int64
	// UnplugAfterFiles pulls the cable once this many files were sent.
	UnplugAfterFiles int
	// UnplugAtStep pulls the cable when the backup reaches a named
	// protocol step (see BackupSteps).
	UnplugAtStep string
	// PasscodeNeverEntered ends the backup with ErrorCode 208 after
	// PasscodeDelay, as iOS 16.1+ does when nobody enters the passcode.
	PasscodeNeverEntered bool
	PasscodeDelay        time.Duration
	// ErrorCode makes the device end the backup with this code
	// (105 disk space, 3 snapshot failed, ...).
	ErrorCode int
	// SlowLinkBytesPerSec caps the rate of file data.
	SlowLinkBytesPerSec int64
	// StallAfterBytes stops sending mid-file after this many bytes and
	// hangs until the connection ends. 0 is off.
	StallAfterBytes int64
	// Hostile names a hostile mode (see HostileModes).
	Hostile string
	// HostileName makes lockdownd give the device a hostile DeviceName
	// (see HostileNames), in binary plists, which carry any byte.
	HostileName string
	// FirstMessageDelay delays the device's first mobilebackup2 message.
	FirstMessageDelay time.Duration
	// LockNeverGranted makes the AFC sync lock answer "would block"
	// forever, as when another tool holds the phone.
	LockNeverGranted bool
	// NoCommonVersion makes mobilebackup2's Hello find no protocol
	// version in common, as with an iOS too old or too new for the host.
	NoCommonVersion bool
	// AbsolutePaths makes the device name its backup's paths with a
	// leading '/', as real iPhones have.
	AbsolutePaths bool
	// UnreadableFiles is how many data files of each backup the device
	// cannot read: each is sent as an error block ("Input/output error")
	// and the backup still succeeds. With ErrorCode 104 the device ends
	// the backup after the upload with "multiple errors uploading files".
	UnreadableFiles int
	// What real iPhones do (see backupsvc.Faults): silences at the slow
	// points, the end-of-backup re-download, announcing less than is
	// sent (0: backupsvc.DefaultAnnouncedShare), and messages that expect
	// no answer.
	ThinkPause        time.Duration
	EndRedownload     bool
	AnnouncedShare    float64
	RepeatDeviceReady bool
	UnknownMessage    bool
}
