package sim

import (
	"net"
)

// Lockdown service names the simulator offers.
const (
	ServiceMobileBackup2     = "com.apple.mobilebackup2"
	ServiceNotificationProxy = "com.apple.mobile.notification_proxy"
	ServiceAFC               = "com.apple.afc"
	ServiceInstallationProxy = "com.apple.mobile.installation_proxy"
	ServiceSpringboard       = "com.apple.springboardservices"
)

// serviceHandlers maps a service name to what serves one connection.
type serviceHandlers map[string]func(d *Device, conn net.Conn)

func (d *Device) initServices() error { return nil }

func (d *Device) willEncrypt() bool { return d.cfg.BackupPassword != "" }

func (d *Device) startService(name string, inSession, hasEscrow bool) (uint16, string) {
	if !inSession {
		return 0, errSessionInactive
	}
	h, ok := d.sim.handlers()[name]
	if !ok {
		return 0, errInvalidService
	}
	if name == ServiceMobileBackup2 && !hasEscrow {
		return 0, errEscrowLocked
	}
	port := d.registerService(name, func(c net.Conn) { h(d, c) })
	return port, ""
}

func (s *Sim) handlers() serviceHandlers { return serviceHandlers{} }

func (d *Device) mutate(share float64) int { return 0 }
