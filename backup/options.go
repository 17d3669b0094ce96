package backup

import (
	"log/slog"
	"time"
)

// Defaults for Options.
const (
	// DefaultFirstMessageTimeout: a device may prepare its snapshot, or
	// wait for its passcode, for a minute or more before it sends its
	// first request after the Backup request.
	DefaultFirstMessageTimeout = 3 * time.Minute
	// DefaultPasscodeGuess: an iOS 16.1 or later device that has sent
	// nothing this long after the Backup request, and relayed no
	// passcode notification, is most likely showing its passcode prompt;
	// one that prepares a snapshot usually starts within a second or two.
	DefaultPasscodeGuess = 5 * time.Second
	// DefaultStallTimeout: the longest silence a working device keeps in
	// the middle of a backup is a few seconds while it lists files; two
	// minutes without a byte is a stall.
	DefaultStallTimeout = 2 * time.Minute
	// DefaultThinkTimeout: the longest a phone that usbmuxd still lists
	// may stay silent at a point where real iPhones think (passcode,
	// snapshot, scanning, a large Manifest.db). Minutes are normal on a
	// large phone; half an hour is not.
	DefaultThinkTimeout = 30 * time.Minute
	// DefaultLockTimeout is how long the sync lock is tried: the 50
	// attempts 200 ms apart that libimobiledevice makes.
	DefaultLockTimeout = 10 * time.Second
	// DefaultLockRetry is the pause between sync lock attempts.
	DefaultLockRetry = 200 * time.Millisecond
	// DefaultServiceTimeout bounds each exchange with the helper services
	// (lockdown, notification_proxy, AFC, installation_proxy,
	// springboardservices) before and after the transfer.
	DefaultServiceTimeout = 30 * time.Second
	// DefaultMaxFileSize bounds one uploaded file: more is a file that
	// never ends. The largest files on a phone are videos of a few GiB.
	DefaultMaxFileSize = 64 << 30
	// DefaultMaxPathLen is the longest path a device may name, the limit
	// libimobiledevice applies to names in file streams.
	DefaultMaxPathLen = 4096
)

// Options tunes an Engine. The zero value gives the defaults.
type Options struct {
	// FirstMessageTimeout bounds the wait for the device's first request
	// after the Backup (or ChangePassword) request; in a backup, a phone
	// that usbmuxd still lists may go on up to ThinkTimeout.
	FirstMessageTimeout time.Duration
	// PasscodeGuess is how long an iOS 16.1 or later device may stay
	// silent after the Backup request before Target.AwaitingPasscode is
	// told it is likely asking for its passcode.
	PasscodeGuess time.Duration
	// StallTimeout: no byte from the device (and none accepted by it) for
	// this long ends the backup with cause stalled, except for a phone
	// that thinks (ThinkTimeout). It also bounds the version exchange and
	// Hello.
	StallTimeout time.Duration
	// ThinkTimeout bounds a silence at the points where real iPhones go
	// quiet for minutes (before the first message, before the first
	// upload, after a download, after an upload round), while usbmuxd
	// still lists the phone and its socket is open. Elsewhere, or for a
	// phone usbmuxd no longer lists, StallTimeout (FirstMessageTimeout
	// before the first message) applies. A ThinkTimeout no longer than
	// those turns the allowance off.
	ThinkTimeout time.Duration
	// LockTimeout bounds the attempts to take the sync lock; a lock still
	// held by another tool after it is device_busy.
	LockTimeout time.Duration
	// LockRetry is the pause between two attempts.
	LockRetry time.Duration
	// ServiceTimeout bounds each exchange with a helper service.
	ServiceTimeout time.Duration
	// MaxFileSize bounds one uploaded file; a device that sends more is
	// treated as hostile. The total a device announces for an
	// UploadFiles round is its estimate and bounds nothing.
	MaxFileSize int64
	// FreeSpaceMargin is the free space kept on the backup disk while
	// files stream in: a round that would eat into it is not stored,
	// the device hears ENOSPC, and the run fails with host_disk_full.
	// 0 keeps none beyond the disk's own end.
	FreeSpaceMargin int64
	// MaxFiles bounds the files and directories one backup may create;
	// 0 means DefaultMaxFiles. Past it, or with the backup disk short of
	// inodes, the backup ends as host_disk_full (see budget.go).
	MaxFiles int64
	// SkipIcons leaves out the app icons from Info.plist, which saves a
	// springboardservices round trip per app.
	SkipIcons bool
	// Logger receives what happened, at debug and warn level; nil
	// discards it.
	Logger *slog.Logger
	// Now is the clock for Info.plist's Last Backup Date and durations;
	// nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.FirstMessageTimeout <= 0 {
		o.FirstMessageTimeout = DefaultFirstMessageTimeout
	}
	if o.PasscodeGuess <= 0 {
		o.PasscodeGuess = DefaultPasscodeGuess
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.ThinkTimeout <= 0 {
		o.ThinkTimeout = DefaultThinkTimeout
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.LockRetry <= 0 {
		o.LockRetry = DefaultLockRetry
	}
	if o.ServiceTimeout <= 0 {
		o.ServiceTimeout = DefaultServiceTimeout
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
