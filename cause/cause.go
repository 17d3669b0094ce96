// Package cause is the taxonomy of why a backup did not happen: every cause
// has a stable code that is stored in the history, one plain sentence for
// the person who owns the iPhone, and what to do about it. It also finds the
// most specific cause in an error chain and classifies the raw signals the
// rest of backupd meets (syscall errors, lockdown error strings and the
// ErrorCode a device puts in its final mobilebackup2 response).
//
// It imports only the standard library so that every other package can use
// it.
package cause

// Code names one cause. Codes are stored in run records and shown by the
// CLI and the local API, so a code, once released, is never renamed.
type Code string

// None is the code of no cause at all: a backup that succeeded, or a nil
// error.
const None Code = ""

// The codes. The table in design.md is the source; codes past it are marked.
const (
	UsbmuxdUnavailable   Code = "usbmuxd_unavailable"
	NotPaired            Code = "not_paired" // no pair record yet: pairing has not started
	TrustPending         Code = "trust_pending"
	TrustDenied          Code = "trust_denied"
	DeviceLocked         Code = "device_locked"
	DeviceInSetup        Code = "device_in_setup" // device ErrorCode 212
	PairingInvalid       Code = "pairing_invalid"
	PasscodeNotEntered   Code = "passcode_not_entered"
	WrongBackupPassword  Code = "wrong_backup_password"
	DeviceSnapshotFailed Code = "device_snapshot_failed"
	HostDiskFull         Code = "host_disk_full"
	HostNotWritable      Code = "host_not_writable"
	CorruptBackup        Code = "corrupt_backup"       // device ErrorCode 205: the host's copy is damaged
	DeviceUploadErrors   Code = "device_upload_errors" // device ErrorCode 104, or files the iPhone could not read
	VerifyFailed         Code = "verify_failed"        // the device said success but the backup did not verify
	CableUnstable        Code = "cable_unstable"
	Disconnected         Code = "disconnected"
	SlowLink             Code = "slow_link"
	DeviceBusy           Code = "device_busy"
	BatteryLow           Code = "battery_low"
	Stalled              Code = "stalled"
	IOSUnsupported       Code = "ios_unsupported"
	Interrupted          Code = "interrupted"
	Recent               Code = "recent"        // skipped: backed up less than min_interval ago (daemon policy)
	QuietHours           Code = "quiet_hours"   // skipped: plugged in during the configured quiet hours
	NotEncrypted         Code = "not_encrypted" // skipped: policy.encryption = "required" and the iPhone does not encrypt
	ProtocolError        Code = "protocol_error"
	Unknown              Code = "unknown"

	// Restore (issue #14).
	FindMyEnabled      Code = "find_my_enabled"      // device ErrorCode 211
	RestoreNeedsReboot Code = "restore_needs_reboot" // device ErrorCode 102
	IOSTooOld          Code = "ios_too_old"          // the iPhone's iOS is older than the backup's
	BackupIncomplete   Code = "backup_incomplete"    // the backup to restore does not verify
)

// Severity tells how loudly to report a cause.
type Severity string

// Severities. Info: nothing is wrong that needs the person. Warning: the
// backup is delayed or degraded and usually recovers. Error: no backup
// until something is fixed.
const (
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Info is what backupd knows about one cause.
type Info struct {
	Code Code
	// Summary is one sentence a person who is not technical understands.
	Summary string
	// Fix says what to do, in the same plain words.
	Fix string
	// Severity is how loudly to report it.
	Severity Severity
	// Transient means backupd tries again by itself and the cause may go
	// away without anyone doing anything. When false, nothing changes
	// until the person acts, so retrying at once only repeats the failure.
	Transient bool
}

// catalogue lists every cause in the order people read them: the order of
// design.md's table, with the extra codes beside their nearest relative.
// It is a function, not a package variable, so no caller can change the
// table that every other caller sees.
func catalogue() []Info {
	return []Info{
		{
			Code:     UsbmuxdUnavailable,
			Summary:  "backupd cannot reach usbmuxd, the system service that lets this computer talk to iPhones over USB.",
			Fix:      "Install and start usbmuxd: on Debian or Ubuntu run \"sudo apt install usbmuxd\"; on Windows install Apple Devices or iTunes; on a Mac it is built in, so restart the Mac.",
			Severity: SeverityError,
		},
		{
			Code:     NotPaired,
			Summary:  "This iPhone has not been paired with this computer yet.",
			Fix:      "Unlock the iPhone and tap Trust when it asks whether to trust this computer.",
			Severity: SeverityWarning,
		},
		{
			Code:     TrustPending,
			Summary:  "The iPhone is asking whether to trust this computer and nobody has answered yet.",
			Fix:      "Unlock the iPhone, tap Trust and enter the passcode if it asks for it.",
			Severity: SeverityWarning,
		},
		{
			Code:     TrustDenied,
			Summary:  "Someone tapped Don't Trust on the iPhone, so it will not talk to this computer.",
			Fix:      "Unplug the iPhone, plug it in again, unlock it and tap Trust.",
			Severity: SeverityError,
		},
		{
			Code:     DeviceLocked,
			Summary:  "The iPhone is locked, and it does not let a computer in while it is locked.",
			Fix:      "Unlock the iPhone with its passcode and keep it unlocked until the backup starts.",
			Severity: SeverityWarning,
		},
		{
			Code:     DeviceInSetup,
			Summary:  "The iPhone has not finished its setup, and it cannot be backed up until it has.",
			Fix:      "Finish setting up the iPhone until you see its Home Screen.",
			Severity: SeverityWarning,
		},
		{
			Code:     PairingInvalid,
			Summary:  "The iPhone no longer recognises this computer; it may have been reset or told to forget the computers it trusted.",
			Fix:      "Pair again: unplug the iPhone, plug it in, unlock it and tap Trust.",
			Severity: SeverityError,
		},
		{
			Code:     PasscodeNotEntered,
			Summary:  "The iPhone asked for its passcode to allow the backup, and nobody entered it in time.",
			Fix:      "Since iOS 16.1 the iPhone asks for its passcode at every backup: when a backup starts, unlock the iPhone and enter the passcode when asked.",
			Severity: SeverityWarning,
		},
		{
			Code:     WrongBackupPassword,
			Summary:  "This iPhone encrypts its backups with a password that is not the one backupd was given.",
			Fix:      "Give backupd the backup password set on this iPhone; if nobody remembers it, it can only be removed on the iPhone with Settings > General > Transfer or Reset iPhone > Reset > Reset All Settings.",
			Severity: SeverityError,
		},
		{
			Code:     DeviceSnapshotFailed,
			Summary:  "The iPhone could not get its data ready for a backup, which often happens after an earlier backup was cut off.",
			Fix:      "Restart the iPhone, then plug it in again.",
			Severity: SeverityError,
		},
		{
			Code:     HostDiskFull,
			Summary:  "This computer does not have enough free space for the backup.",
			Fix:      "Free up space on the disk that holds the backups, or move backup_dir to a bigger disk. If backupd's log says the phone created more files than backup.max_files allows, raise that setting.",
			Severity: SeverityError,
		},
		{
			Code:     HostNotWritable,
			Summary:  "backupd is not allowed to write to the backup folder, or the disk it is on is read-only.",
			Fix:      "Give the user backupd runs as permission to write to backup_dir, or fix the disk's mount so it is not read-only.",
			Severity: SeverityError,
		},
		{
			Code:     CorruptBackup,
			Summary:  "The previous backup on this computer is damaged, so the iPhone could not add to it.",
			Fix:      "Start a full backup so the iPhone does not build on the damaged copy; if it happens again, check the disk that holds the backups.",
			Severity: SeverityError,
		},
		{
			Code:      DeviceUploadErrors,
			Summary:   "The iPhone could not read some of its own files while it sent them, which happens when it locks during the backup.",
			Fix:       "Keep the iPhone unlocked, with its screen on, until the backup ends; if it happens again, restart the iPhone.",
			Severity:  SeverityWarning,
			Transient: true,
		},
		{
			Code:      VerifyFailed,
			Summary:   "The backup finished but failed its check, so it was not kept and the last good backup is still the latest.",
			Fix:       "Nothing, if it happens once: the next backup tries again. If it keeps happening, check the disk that holds the backups and report it with the log.",
			Severity:  SeverityError,
			Transient: true,
		},
		{
			Code:     CableUnstable,
			Summary:  "The iPhone keeps disconnecting and reconnecting, which usually means a worn cable or a loose port.",
			Fix:      "Use a cable you know is good and plug the iPhone straight into the computer, not into a hub.",
			Severity: SeverityWarning,
		},
		{
			Code:      Disconnected,
			Summary:   "The iPhone was disconnected before the backup finished.",
			Fix:       "Keep the iPhone connected until the backup ends; backupd tries again the next time it is plugged in.",
			Severity:  SeverityWarning,
			Transient: true,
		},
		{
			Code:      SlowLink,
			Summary:   "The iPhone is connected at USB 2 speed although it can use USB 3, so backups take much longer than they need to.",
			Fix:       "Use a USB 3 cable (the one that came with a Pro iPhone is USB 2 only) and a USB 3 port on the computer, without a hub.",
			Severity:  SeverityWarning,
			Transient: true,
		},
		{
			Code:      DeviceBusy,
			Summary:   "Another program is already using the iPhone for a backup or a sync.",
			Fix:       "Quit other phone tools (Finder, iTunes, Apple Devices, iMazing, 3uTools) and wait for any backup they run to end.",
			Severity:  SeverityWarning,
			Transient: true,
		},
		{
			Code:      BatteryLow,
			Summary:   "The iPhone's battery is low and it is not charging, so backupd waited.",
			Fix:       "Charge the iPhone; the backup starts once the battery is high enough.",
			Severity:  SeverityWarning,
			Transient: true,
		},
		{
			Code:      Stalled,
			Summary:   "The backup stopped making progress.",
			Fix:       "Keep the iPhone unlocked and connected; if it happens again, try another USB port or cable.",
			Severity:  SeverityWarning,
			Transient: true,
		},
		{
			Code:     FindMyEnabled,
			Summary:  "Find My is turned on on the iPhone, and an iPhone refuses to be restored while it is.",
			Fix:      "On the iPhone, turn off Settings > your name > Find My > Find My iPhone (it asks for the Apple Account password), then restore again.",
			Severity: SeverityError,
		},
		{
			Code:     RestoreNeedsReboot,
			Summary:  "The iPhone was already restored once since it last started, and it takes no second restore until it restarts.",
			Fix:      "Restart the iPhone, unlock it once it is back, then restore again.",
			Severity: SeverityWarning,
		},
		{
			Code:     IOSTooOld,
			Summary:  "The iPhone runs an older version of iOS than the backup was made with, and an iPhone cannot take a backup from a newer iOS.",
			Fix:      "Update iOS on the iPhone in Settings > General > Software Update to the backup's version or later, then restore again.",
			Severity: SeverityError,
		},
		{
			Code:     BackupIncomplete,
			Summary:  "The backup chosen for the restore is incomplete or damaged, so backupd did not send it to the iPhone.",
			Fix:      "Pick another version with \"backupd versions\" and restore from it with --from; if several are damaged, check the disk that holds the backups.",
			Severity: SeverityError,
		},
		{
			Code:     IOSUnsupported,
			Summary:  "The iPhone's version of iOS is too old for backupd.",
			Fix:      "Update iOS on the iPhone in Settings > General > Software Update.",
			Severity: SeverityError,
		},
		{
			Code:      Interrupted,
			Summary:   "backupd was stopped while a backup was running; that backup was dropped and the last good one is untouched.",
			Fix:       "Nothing: the next backup runs normally.",
			Severity:  SeverityInfo,
			Transient: true,
		},
		{
			Code:      Recent,
			Summary:   "This iPhone was backed up recently, so backupd did not back it up again.",
			Fix:       "Nothing: the next backup runs once the minimum interval (min_interval) has passed; to back it up now, ask for a backup with \"backupd backup\".",
			Severity:  SeverityInfo,
			Transient: true,
		},
		{
			Code:      QuietHours,
			Summary:   "The iPhone was connected during the quiet hours set in the configuration, so backupd waited.",
			Fix:       "Nothing: the backup starts when the quiet hours end if the iPhone is still connected; to back it up now, ask for a backup with \"backupd backup\".",
			Severity:  SeverityInfo,
			Transient: true,
		},
		{
			Code:     NotEncrypted,
			Summary:  "This iPhone does not encrypt its backups, and the configuration allows only encrypted backups.",
			Fix:      "Turn on backup encryption with \"backupd encryption on\" (or in Finder or iTunes) and keep the password somewhere safe: nobody can recover it.",
			Severity: SeverityWarning,
		},
		{
			Code:     ProtocolError,
			Summary:  "The iPhone answered in a way backupd does not understand.",
			Fix:      "Report it, with the log attached.",
			Severity: SeverityError,
		},
		{
			Code:     Unknown,
			Summary:  "Something went wrong that backupd cannot explain yet.",
			Fix:      "Report it, with the log attached.",
			Severity: SeverityError,
		},
	}
}

// All returns every cause, in a stable order meant for reading.
func All() []Info {
	return catalogue()
}

// Lookup returns what is known about code. A code this version does not
// know (one read from a newer version's history, say) gets Unknown's
// sentences but keeps its own code, so it is still shown as it was stored.
func Lookup(code Code) Info {
	var unknown Info
	for _, in := range catalogue() {
		if in.Code == code {
			return in
		}
		if in.Code == Unknown {
			unknown = in
		}
	}
	unknown.Code = code
	return unknown
}

// Known reports whether c is one of this version's codes.
func (c Code) Known() bool {
	for _, in := range catalogue() {
		if in.Code == c {
			return true
		}
	}
	return false
}

// String returns the code itself.
func (c Code) String() string { return string(c) }
