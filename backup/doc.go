// Package backup is the mobilebackup2 host engine: it answers a device's
// DeviceLink requests, confines every path the device names to the staging
// root, and commits a backup only when the device reported success and the
// result verifies, so the last good backup is never touched by one in
// progress.
package backup
