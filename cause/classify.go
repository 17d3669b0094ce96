package cause

import "syscall"

// FromErrno classifies a system error from the host's file system. It
// returns None for the errors that do not name a cause by themselves
// (ENOENT, say, which is as likely our own bug as anything the person can
// fix). The table is per platform: see errno_*.go.
func FromErrno(errno syscall.Errno) Code {
	return fromErrno(errno)
}

// Device ErrorCodes a device puts in its final mobilebackup2 Response.
// These are the ones seen in the field (see shared/protocol.md).
const (
	DeviceErrSnapshotFailed   = 3   // "Failed to create snapshot", after an interrupted backup
	DeviceErrUploadErrors     = 104 // "multiple errors uploading files" (the screen locked, say)
	DeviceErrHostDiskFull     = 105 // not enough free space on the computer
	DeviceErrCorruptBackup    = 205 // the host's Manifest.plist is empty or corrupt
	DeviceErrWrongPassword    = 207 // wrong backup password
	DeviceErrPasscodeRequired = 208 // the passcode was not entered on the phone in time
	DeviceErrInSetup          = 212 // the device is still in Setup Assistant
	// Codes of a restore's final Response.
	DeviceErrRestoreNeedsReboot = 102 // a second restore without a restart in between
	DeviceErrFindMyEnabled      = 211 // Find My is on
)

// FromDeviceError classifies the ErrorCode of a device's final
// mobilebackup2 Response. 0 is success and gives None; a code we have not
// met gives ProtocolError, because we cannot tell the person what it means.
func FromDeviceError(errorCode int) Code {
	switch errorCode {
	case 0:
		return None
	case DeviceErrSnapshotFailed:
		return DeviceSnapshotFailed
	case DeviceErrUploadErrors:
		return DeviceUploadErrors
	case DeviceErrHostDiskFull:
		return HostDiskFull
	case DeviceErrCorruptBackup:
		return CorruptBackup
	case DeviceErrWrongPassword:
		return WrongBackupPassword
	case DeviceErrPasscodeRequired:
		return PasscodeNotEntered
	case DeviceErrInSetup:
		return DeviceInSetup
	default:
		return ProtocolError
	}
}

// FromRestoreDeviceError classifies the ErrorCode of a restore's final
// mobilebackup2 Response: 211 and 102 are the restore's own refusals,
// and 205, which in a backup means the host's copy is damaged, means in
// a restore that the device could not download all of the backup; the
// rest mean what they mean in a backup.
func FromRestoreDeviceError(errorCode int) Code {
	switch errorCode {
	case DeviceErrFindMyEnabled:
		return FindMyEnabled
	case DeviceErrRestoreNeedsReboot:
		return RestoreNeedsReboot
	case DeviceErrCorruptBackup:
		return BackupIncomplete
	}
	return FromDeviceError(errorCode)
}

// FromLockdown classifies the Error string of a lockdownd reply. An empty
// string is no error and gives None; a string we do not know gives
// ProtocolError.
func FromLockdown(errorString string) Code {
	switch errorString {
	case "":
		return None
	case "PasswordProtected":
		return DeviceLocked
	case "EscrowLocked":
		// The escrow bag stays locked until the phone has been unlocked
		// once since it started: the same fix as a locked phone.
		return DeviceLocked
	case "UserDeniedPairing":
		return TrustDenied
	case "PairingDialogResponsePending":
		return TrustPending
	case "InvalidHostID", "InvalidPairRecord":
		// The phone no longer knows the host in our pair record.
		return PairingInvalid
	default:
		// SessionInactive, InvalidService, ServiceProhibited, MissingValue,
		// GetProhibited and anything new: a request we made wrongly or a
		// reply we do not understand.
		return ProtocolError
	}
}
