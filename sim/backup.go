package sim

import (
	"context"
	"net"

	"github.com/backupd/backupd/sim/backupsvc"
)

// BackupSteps lists the protocol steps Faults.UnplugAtStep can name.
func BackupSteps() []string {
	var out []string
	for _, s := range backupsvc.Steps() {
		out = append(out, string(s))
	}
	return out
}

// HostileModes lists the names Faults.Hostile takes.
func HostileModes() []string {
	var out []string
	for _, h := range backupsvc.HostileModes() {
		out = append(out, string(h))
	}
	return out
}

// BackupStats describes the device's last completed backup.
type BackupStats struct {
	FilesSent int   // data files sent
	BytesSent int64 // their content bytes
	Removed   int   // files the device asked the host to delete
	Backups   int64 // completed backups so far
	LastFull  bool
	Encrypted bool
	// DirsChecked counts the host's DLContentsOfDirectory answers the
	// device listed and found to agree with its own manifest;
	// Unreadable the files it could not read and sent as an error.
	DirsChecked int
	Unreadable  int
}

// BackupStats returns what the last completed backup sent.
func (d *Device) BackupStats() BackupStats {
	r := d.state.stats.Last()
	return BackupStats{
		FilesSent: r.Files,
		BytesSent: r.Bytes,
		Removed:   r.Removed,
		Backups:   d.state.stats.BackupsCompleted.Load(),
		LastFull:  r.Full,
		Encrypted: r.Encrypted,

		DirsChecked: r.DirsChecked,
		Unreadable:  r.Unreadable,
	}
}

// BackupPassword returns the backup password the device holds ("" when
// its backups are not encrypted).
func (d *Device) BackupPassword() string { return d.state.enc.Password() }

func (d *Device) serveBackup(ctx context.Context, c net.Conn) error {
	cfg := d.Config()
	f := cfg.Faults
	defer d.afterMobileBackup2()
	return backupsvc.Serve(ctx, c, backupsvc.Config{
		UDID: cfg.UDID,
		Device: backupsvc.DeviceInfo{
			DeviceName:     cfg.Name,
			ProductType:    cfg.ProductType,
			ProductVersion: cfg.ProductVersion,
			BuildVersion:   cfg.BuildVersion,
			SerialNumber:   cfg.SerialNumber,
		},
		Set:               d.state.files,
		Stats:             d.state.stats,
		Encryption:        d.state.enc,
		Restore:           d.state.restore,
		Unplug:            d.Unplug,
		RelayNotification: func(name string) { d.state.notifications.Relay(name) },
		// iphonesim ctl unlock is the person entering the passcode.
		PasscodeEntered: d.passcodeEntered,
		Faults: backupsvc.Faults{
			FirstMessageDelay:    f.FirstMessageDelay,
			UnplugAtStep:         backupsvc.Step(f.UnplugAtStep),
			UnplugAfterBytes:     f.UnplugAfterBytes,
			UnplugAfterFiles:     f.UnplugAfterFiles,
			PasscodeNeverEntered: f.PasscodeNeverEntered,
			PasscodeDelay:        f.PasscodeDelay,
			ErrorCode:            f.ErrorCode,
			SlowLinkBytesPerSec:  f.SlowLinkBytesPerSec,
			StallAfterBytes:      f.StallAfterBytes,
			Hostile:              backupsvc.Hostile(f.Hostile),
			NoCommonVersion:      f.NoCommonVersion,
			UnreadableFiles:      f.UnreadableFiles,
			AbsolutePaths:        f.AbsolutePaths,
			ThinkPause:           f.ThinkPause,
			EndRedownload:        f.EndRedownload,
			AnnouncedShare:       f.AnnouncedShare,
			RepeatDeviceReady:    f.RepeatDeviceReady,
			UnknownMessage:       f.UnknownMessage,
		},
	})
}
