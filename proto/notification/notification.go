// Package notification names what a host and a device say over
// com.apple.mobile.notification_proxy: the commands of its messages (plist
// dictionaries {Command, Name}) and the notifications a backup posts and
// observes. The host's client (backup) and the simulated device's
// notification centre (sim/syncsvc) both take the names from here.
package notification

// Commands, the Command of each message. A host observes and posts; the
// device relays what a host observes and answers Shutdown with ProxyDeath.
const (
	CommandObserve    = "ObserveNotification"
	CommandPost       = "PostNotification"
	CommandRelay      = "RelayNotification"
	CommandShutdown   = "Shutdown"
	CommandProxyDeath = "ProxyDeath"
)

// What a backup host posts around a backup (libimobiledevice's NP_SYNC_*).
const (
	SyncWillStart   = "com.apple.itunes-mobdev.syncWillStart"
	SyncLockRequest = "com.apple.itunes-mobdev.syncLockRequest"
	SyncDidStart    = "com.apple.itunes-mobdev.syncDidStart"
	SyncDidFinish   = "com.apple.itunes-mobdev.syncDidFinish"
)

// What the device relays to hosts that observe it. The person cancels,
// suspends or resumes a sync with the itunes-client ones.
const (
	SyncCancelRequest  = "com.apple.itunes-client.syncCancelRequest"
	SyncSuspendRequest = "com.apple.itunes-client.syncSuspendRequest"
	SyncResumeRequest  = "com.apple.itunes-client.syncResumeRequest"
	// The passcode prompt an iOS 16.1 or later device shows at each
	// backup comes and goes with these (seen by pymobiledevice3); the
	// device sends nothing over mobilebackup2 while it shows.
	PasscodePresented = "com.apple.LocalAuthentication.ui.presented"
	PasscodeDismissed = "com.apple.LocalAuthentication.ui.dismissed"
	// BackupDomainChanged says a value of the com.apple.mobile.backup
	// lockdown domain changed (libimobiledevice's
	// NP_BACKUP_DOMAIN_CHANGED).
	BackupDomainChanged = "com.apple.mobile.backup.domain_changed"
)
