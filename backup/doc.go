// Package backup is the mobilebackup2 host engine: it backs an iPhone up
// into a staging clone of its latest backup and commits the result only
// when the device reported success and the backup verifies, so the last
// good backup is never touched by one in progress.
//
// Engine.Run does what a host does around a backup, in libimobiledevice's
// order: it reads the device's lockdown values, observes the phone's
// cancel requests and posts the sync notifications (notification_proxy),
// takes the sync lock (AFC), writes Info.plist, and then answers the
// device's DeviceLink requests (files up and down, directories, moves,
// removals, free space) until its final Response. Engine.SetPassword
// turns backup encryption on or off.
//
// Safety: every path the device names is checked lexically and then
// resolved through os.Root inside the staging root, so nothing outside it
// is ever touched; a device that tries is refused and the run ends with
// cause protocol_error. An absolute-looking path ("/.b/6/...", which real
// iPhones send) is mapped under the root, as libimobiledevice does. Staging shares inodes with the latest backup, so
// no existing file is ever opened for writing: new content always goes to
// a new inode. Every wait is bounded (Options), what the device sends is
// bounded (message and block sizes, the round totals it announces), and
// memory does not grow with the backup.
//
// The device's word decides whether a backup succeeded: files it could
// not read (an error block alone) do not fail a backup it calls
// successful; they are listed in the backup and in Result (unreadable.go).
//
// Every error Run returns is a *cause.Error carrying the device's own
// ErrorCode and text where there is one.
package backup
