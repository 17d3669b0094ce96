// Package lockdown names what lockdownd offers on a device: its port, the
// services a backup host starts through it and the value domains it reads.
// The host (usbmux, backup, doctor) and the simulated device (sim) both
// take the names from here, so each is written once.
package lockdown

// Port is lockdownd's TCP port on the device, reached through usbmuxd.
const Port = 62078

// Type is what lockdownd answers to QueryType; anything else on Port is
// not lockdownd.
const Type = "com.apple.mobile.lockdown"

// Service names, as StartService takes them.
const (
	ServiceMobileBackup2     = "com.apple.mobilebackup2"
	ServiceNotificationProxy = "com.apple.mobile.notification_proxy"
	ServiceAFC               = "com.apple.afc"
	ServiceInstallationProxy = "com.apple.mobile.installation_proxy"
	ServiceSpringboard       = "com.apple.springboardservices"
)

// Value domains, as GetValue takes them.
const (
	DomainBackup       = "com.apple.mobile.backup"
	DomainBattery      = "com.apple.mobile.battery"
	DomainDiskUsage    = "com.apple.disk_usage"
	DomainITunes       = "com.apple.iTunes"
	DomainMobileITunes = "com.apple.mobile.iTunes"
)
