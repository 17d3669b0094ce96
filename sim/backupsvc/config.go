// Package backupsvc is the device side of com.apple.mobilebackup2 for the
// simulated iPhone: given the connection a host opened to the service, it
// drives a backup the way a real iPhone does, so that Debian's
// idevicebackup2 and our own host engine both accept it.
//
// A backup, in the order a real device uses:
//
//	version          DeviceLink version exchange (400)
//	hello            Hello → Response {ProtocolVersion 2.1}
//	                 the host's request: Backup or ChangePassword
//	download-status  DownloadFiles <UDID>/Status.plist
//	download-manifest DownloadFiles Manifest.plist, Manifest.db (incremental only)
//	freespace        GetFreeDiskSpace
//	mkdir-snapshot   CreateDirectory <UDID>/Snapshot and the xx/ directories
//	upload           UploadFiles the changed data files into <UDID>/Snapshot/xx/
//	upload-manifest  UploadFiles Manifest.db and Manifest.plist into Snapshot/
//	move             MoveItems Snapshot/… → <UDID>/…
//	remove           RemoveItems deleted files and <UDID>/Snapshot
//	status           UploadFiles <UDID>/Status.plist (SnapshotState finished)
//	final            ProcessMessage Response {ErrorCode 0}
//
// The device remembers the UUID of the last snapshot it completed (in
// Stats). When the host hands back a Status.plist with that UUID and a
// readable Manifest.db, the backup is incremental: only files whose
// generation, size or time differ from the host's Manifest.db are sent, and
// files deleted from the device are removed.
//
// Faults (per device, see Faults) make the device fail the ways real
// iPhones do, and hostile modes (see Hostile) make it attack the host.
package backupsvc

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backupd/backupd/proto/backupcrypt"
	"github.com/backupd/backupd/sim/fileset"
)

// Config is what Serve needs to know about the device.
type Config struct {
	// UDID names the device; the backup lives in <UDID>/ unless the host's
	// request names another TargetIdentifier.
	UDID string
	// Device facts written into Manifest.plist's Lockdown dictionary.
	Device DeviceInfo
	// Set is the device's file set. Required.
	Set *fileset.Set
	// Stats collects counters and the device's memory of its last
	// snapshot. It must outlive one connection for incremental backups to
	// work. Nil means a throwaway one.
	Stats *Stats
	// Encryption holds the backup password. Nil means unencrypted, and
	// ChangePassword then does not persist beyond this connection.
	Encryption *Encryption
	// Unplug simulates pulling the cable. The simulator core pushes
	// Detached and closes every connection of the device. Nil means the
	// service only closes its own connection.
	Unplug func()
	// Restore is what the device remembers about restores (Find My, a
	// restore since the last boot, the last restore's report). Nil means
	// a throwaway one.
	Restore *RestoreState
	// Faults to inject.
	Faults Faults
	// BlockSize is the content size of one upload block; 0 means 1 MiB.
	BlockSize int
	// TempDir holds Manifest.db while it is built or received; "" means
	// the system temporary directory.
	TempDir string
	// Now is the clock for plist dates; nil means time.Now.
	Now func() time.Time
	// RelayNotification, if set, relays a device notification to the hosts that
	// observe it (notification_proxy): the passcode prompt's
	// notification.PasscodePresented and notification.PasscodeDismissed.
	RelayNotification func(name string)
	// PasscodeEntered, if set, is called when the passcode prompt
	// appears and returns a channel that is closed when the person enters
	// the passcode; the prompt then ends before its PasscodeDelay.
	PasscodeEntered func() <-chan struct{}
}

// DeviceInfo are the lockdown values a backup records.
type DeviceInfo struct {
	DeviceName     string
	ProductType    string
	ProductVersion string
	BuildVersion   string
	SerialNumber   string
}

// Step names a point in the protocol where a fault can strike.
type Step string

// The steps of a backup, in order (see the package comment).
const (
	StepVersion          Step = "version"
	StepHello            Step = "hello"
	StepDownloadStatus   Step = "download-status"
	StepDownloadManifest Step = "download-manifest"
	StepFreeSpace        Step = "freespace"
	StepMkdirSnapshot    Step = "mkdir-snapshot"
	StepUpload           Step = "upload"
	StepUploadManifest   Step = "upload-manifest"
	StepMove             Step = "move"
	StepRemove           Step = "remove"
	StepStatus           Step = "status"
	StepFinal            Step = "final"
)

// Steps returns every step in protocol order. StepDownloadManifest only
// happens in incremental backups.
func Steps() []Step {
	return []Step{StepVersion, StepHello, StepDownloadStatus, StepDownloadManifest, StepFreeSpace,
		StepMkdirSnapshot, StepUpload, StepUploadManifest, StepMove, StepRemove, StepStatus, StepFinal}
}

// Hostile selects a way the device attacks the host. Each mode does its
// attack once, in place of or in addition to the normal step, and then
// carries on as if nothing happened; a host that stops the backup or hangs
// up is behaving correctly. Path modes write or delete outside the backup
// directory on a host that does not confine paths (idevicebackup2 does
// not): use them only against backupd's own host engine.
type Hostile string

// Hostile modes.
const (
	HostileNone Hostile = ""
	// HostileDotDot uploads the first data file to
	// "<UDID>/../../backupd-hostile-dotdot", outside the backup directory.
	HostileDotDot Hostile = "dotdot"
	// HostileAbsolute uploads the first data file to the absolute path
	// "/../tmp/backupd-hostile-absolute": /tmp/backupd-hostile-absolute
	// taken as it stands. A leading '/' alone is no attack (real iPhones
	// send "/.b/6/..." and hosts map it under the backup directory); one
	// that climbs out of it is.
	HostileAbsolute Hostile = "absolute"
	// HostileSymlink uploads the first data file to
	// "<UDID>/Snapshot/link/escape". The host never creates symlinks over
	// this protocol, so a test plants <UDID>/Snapshot/link as a symlink
	// pointing outside the backup; a host that follows it writes there.
	HostileSymlink Hostile = "symlink"
	// HostileLongName names the first data file with a 5000-byte path,
	// over the 4096-byte limit.
	HostileLongName Hostile = "long-name"
	// HostileHugeFrame sends a message length of 0xFFFFFFFF as its first
	// request, then waits for the host to hang up.
	HostileHugeFrame Hostile = "huge-frame"
	// HostileMalformedPlist sends a well-framed message that is not a
	// plist as its first request, then waits.
	HostileMalformedPlist Hostile = "malformed-plist"
	// HostileTruncatedPlist announces a 1000-byte message, sends 10 bytes
	// of it, then waits.
	HostileTruncatedPlist Hostile = "truncated-plist"
	// HostileEndlessFile never ends the first data file: content blocks
	// follow one another until the host hangs up.
	HostileEndlessFile Hostile = "endless-file"
	// HostileMkdirEscape asks the host to create
	// "<UDID>/../../backupd-hostile-mkdir".
	HostileMkdirEscape Hostile = "mkdir-escape"
	// HostileMoveEscape moves Snapshot/Manifest.plist to
	// "<UDID>/../../backupd-hostile-move".
	HostileMoveEscape Hostile = "move-escape"
	// HostileRemoveEscape asks the host to remove
	// "<UDID>/../../backupd-hostile-remove".
	HostileRemoveEscape Hostile = "remove-escape"
)

// HostileModes returns every hostile mode.
func HostileModes() []Hostile {
	return []Hostile{HostileDotDot, HostileAbsolute, HostileSymlink, HostileLongName, HostileHugeFrame,
		HostileMalformedPlist, HostileTruncatedPlist, HostileEndlessFile, HostileMkdirEscape,
		HostileMoveEscape, HostileRemoveEscape, HostileManifestEndless, HostileManifestHugeBlobs,
		HostileInodeFlood, HostileAppFlood}
}

// Faults make the device misbehave. The zero value is a healthy device.
// Byte counts are file content bytes of data files in the current backup.
type Faults struct {
	// FirstMessageDelay holds back the device's first request after the
	// host's Backup request, as real devices do for up to a minute while
	// they prepare the snapshot. (libimobiledevice waits for messages in
	// 30-second rounds and retries, so any delay is fine there.)
	FirstMessageDelay time.Duration
	// UnplugAtStep pulls the cable on entering the step, before the device
	// sends or reads anything for it.
	UnplugAtStep Step
	// UnplugAfterBytes pulls the cable after this many content bytes,
	// usually mid-file. 0 is off.
	UnplugAfterBytes int64
	// UnplugAfterFiles pulls the cable once this many data files were sent
	// completely. 0 is off.
	UnplugAfterFiles int
	// PasscodeNeverEntered makes the device wait PasscodeDelay for a
	// passcode nobody enters, then end the backup with ErrorCode 208, as
	// iOS 16.1 and later do (after about three minutes). Without it, a
	// PasscodeDelay is the time the person takes to enter the passcode,
	// after which the backup goes on. Either way the device relays
	// notification.PasscodePresented when it starts asking and
	// notification.PasscodeDismissed when it stops; Config.PasscodeEntered ends
	// the wait early, with the backup going on.
	PasscodeNeverEntered bool
	PasscodeDelay        time.Duration
	// ErrorCode ends the backup with this device error where a real
	// device reports it: 105 (not enough space on the computer) after
	// GetFreeDiskSpace, 3 (failed to create snapshot) after downloading
	// Status.plist, 104 (multiple errors uploading files) after the
	// upload, 208 like PasscodeNeverEntered, any other code right after
	// the request. 0 is off.
	ErrorCode int
	// SlowLinkBytesPerSec caps the rate of everything the device sends.
	// 0 is off.
	SlowLinkBytesPerSec int64
	// StallAfterBytes stops sending after this many content bytes, mid-
	// file, and hangs until the connection ends. 0 is off; 1 stalls inside
	// the first non-empty file.
	StallAfterBytes int64
	// Hostile selects an attack on the host.
	Hostile Hostile
	// NoCommonVersion answers Hello with ErrorCode 1, as a device whose
	// iOS speaks none of the host's protocol versions does.
	NoCommonVersion bool
	// AbsolutePaths makes the device name every path of a backup with a
	// leading '/' ("/<UDID>/Snapshot/..."), as real iPhones have named
	// "/.b/6/..." paths; hosts map them under the backup directory.
	AbsolutePaths bool
	// UnreadableFiles is how many data files, the first of each backup,
	// the device cannot read: each goes out as an error block alone
	// ("Input/output error") and the backup still ends with ErrorCode 0,
	// as real iPhones do (see listing.go). 0 is off.
	UnreadableFiles int

	// What real iPhones do that a host must live with (protocol.md,
	// "What real iPhones do"); none of it is an error.

	// ThinkPause is a silence the device keeps at each point where real
	// iPhones think for minutes: before its first message, after it
	// downloaded the host's Manifest.db, before its first upload, before
	// it uploads Manifest.db, and after its end-of-backup re-download;
	// in a restore, before its first message, before its first file
	// request and after its last file (applying the restore). 0 is off.
	ThinkPause time.Duration
	// EndRedownload makes the device download Status.plist,
	// Manifest.plist and Manifest.db again at the end of the backup,
	// after its moves and removals, as real iPhones do.
	EndRedownload bool
	// AnnouncedShare is the share of an upload round's bytes that the
	// device announces in DLMessageUploadFiles. Real iPhones announce
	// less than they send (logs show 1.4 MB announced, 2.0 MB sent), so
	// 0 means DefaultAnnouncedShare; 1 announces the exact total.
	AnnouncedShare float64
	// RepeatDeviceReady sends DLMessageDeviceReady again after
	// GetFreeDiskSpace; the device expects no answer to it.
	RepeatDeviceReady bool
	// UnknownMessage sends a DeviceLink message no host knows after
	// GetFreeDiskSpace; the device expects no answer to it either. A host
	// that answers it desynchronises the stream.
	UnknownMessage bool
}

// DefaultAnnouncedShare is the share of an upload round's real size a
// device announces by default: what a real iPhone's log showed.
const DefaultAnnouncedShare = 0.7

// MsgUnknown is the message UnknownMessage sends.
const MsgUnknown = "DLMessageBackupdUnknownNotice"

// Device error codes (the ErrorCode of the final Response).
const (
	CodeOK                 = 0
	CodeNoCommonVersion    = 1
	CodeSnapshotFailed     = 3
	CodeHostFailure        = 100 // the host could not do what was asked
	CodeUploadErrors       = 104 // multiple errors uploading files (the screen locked)
	CodeNotEnoughSpace     = 105
	CodeCorruptManifest    = 205
	CodeWrongPassword      = 207
	CodePasscodeNotEntered = 208
	CodeUnsupported        = 300 // a request the simulator does not implement
)

// Errors Serve returns when a fault ends the session.
var (
	// ErrUnplugged: a fault pulled the cable.
	ErrUnplugged = errors.New("backupsvc: unplugged by fault")
	// ErrStalled: a stall fault held the connection until it ended.
	ErrStalled = errors.New("backupsvc: stalled by fault")
)

// Encryption is the device's backup encryption setting, shared between
// the backup service and lockdownd (com.apple.mobile.backup/WillEncrypt),
// and the device's keys: its class keys, the backup keybag that wraps
// them with the password, and the secret its per-file keys come from
// (see crypt.go).
type Encryption struct {
	mu       sync.Mutex
	password string
	params   backupcrypt.Params
	keys     *deviceKeys
}

// NewEncryption returns a setting with the given password ("" = off),
// whose keybag uses TestParams.
func NewEncryption(password string) *Encryption {
	return &Encryption{password: password, params: TestParams}
}

// WillEncrypt reports whether backups are encrypted.
func (e *Encryption) WillEncrypt() bool { return e.Password() != "" }

// Password returns the backup password, "" when encryption is off.
func (e *Encryption) Password() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.password
}

// SetPassword replaces the password, as "Reset All Settings" on the phone
// can ("" turns encryption off).
func (e *Encryption) SetPassword(p string) {
	e.mu.Lock()
	e.password = p
	e.mu.Unlock()
}

// change applies a ChangePassword request: old must match the current
// password (when one is set), and new replaces it ("" = off).
func (e *Encryption) change(old, new string, haveOld, haveNew bool) (int, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case !haveOld && !haveNew:
		return CodeHostFailure, "ChangePassword without OldPassword or NewPassword"
	case e.password != "" && (!haveOld || old != e.password):
		return CodeWrongPassword, "The backup password is incorrect"
	case e.password == "" && !haveNew:
		return CodeHostFailure, "Backup encryption is not enabled"
	}
	e.password = new
	return CodeOK, ""
}

// Stats counts what the device sent and remembers its last snapshot. It is
// safe for concurrent use; tests read it while a backup runs.
type Stats struct {
	// Totals over every backup, updated as files go out.
	FilesSent        atomic.Int64
	BytesSent        atomic.Int64
	FilesRemoved     atomic.Int64
	BackupsCompleted atomic.Int64

	mu       sync.Mutex
	step     Step
	last     Report
	current  Report
	snapshot string // UUID of the last completed snapshot
	// unsent are the files the device could not read in its last
	// completed backup: it sends them again in the next.
	unsent map[string]bool
}

func (s *Stats) setUnsent(ids map[string]bool) {
	s.mu.Lock()
	s.unsent = ids
	s.mu.Unlock()
}

func (s *Stats) wasUnsent(fileID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unsent[fileID]
}

// Report describes one backup.
type Report struct {
	Full      bool
	Encrypted bool
	// Files and Bytes are the data files (and their content bytes) sent.
	Files int
	Bytes int64
	// Removed is how many files the device asked the host to delete.
	Removed int
	// DirsChecked counts the host's directory listings found to agree
	// with the device's manifest; Unreadable the files the device could
	// not read (listing.go).
	DirsChecked int
	Unreadable  int
	UUID        string
	Finished    time.Time
}

// Last describes the last completed backup.
func (s *Stats) Last() Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Current describes the backup in progress, or the last one that ended,
// completed or not.
func (s *Stats) Current() Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Step is the last step any backup entered.
func (s *Stats) Step() Step {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.step
}

// LastSnapshot is the UUID of the last completed snapshot ("" if none).
func (s *Stats) LastSnapshot() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot
}

// Forget erases the device's memory of its last snapshot, so the next
// backup is full, as after restoring the phone.
func (s *Stats) Forget() {
	s.mu.Lock()
	s.snapshot = ""
	s.mu.Unlock()
}

func (s *Stats) setStep(st Step) {
	s.mu.Lock()
	s.step = st
	s.mu.Unlock()
}

func (s *Stats) begin(full, encrypted bool) {
	s.mu.Lock()
	s.current = Report{Full: full, Encrypted: encrypted}
	s.mu.Unlock()
}

func (s *Stats) fileSent(size int64) {
	s.FilesSent.Add(1)
	s.BytesSent.Add(size)
	s.mu.Lock()
	s.current.Files++
	s.current.Bytes += size
	s.mu.Unlock()
}

func (s *Stats) bytesSent(n int64) {
	s.BytesSent.Add(n)
	s.mu.Lock()
	s.current.Bytes += n
	s.mu.Unlock()
}

func (s *Stats) removed(n int) {
	s.FilesRemoved.Add(int64(n))
	s.mu.Lock()
	s.current.Removed += n
	s.mu.Unlock()
}

func (s *Stats) complete(uuid string, at time.Time) {
	s.BackupsCompleted.Add(1)
	s.mu.Lock()
	s.current.UUID = uuid
	s.current.Finished = at
	s.last = s.current
	s.snapshot = uuid
	s.mu.Unlock()
}
