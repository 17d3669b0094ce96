package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"

	"github.com/backupd/backupd/sim/backupsvc"
	"github.com/backupd/backupd/sim/fileset"
	"github.com/backupd/backupd/sim/syncsvc"
)

// Lockdown service names the simulator offers.
const (
	ServiceMobileBackup2     = "com.apple.mobilebackup2"
	ServiceNotificationProxy = "com.apple.mobile.notification_proxy"
	ServiceAFC               = "com.apple.afc"
	ServiceInstallationProxy = "com.apple.mobile.installation_proxy"
	ServiceSpringboard       = "com.apple.springboardservices"
)

// deviceState is what outlives one connection to a device's services.
type deviceState struct {
	files  *fileset.Set
	afc    *syncsvc.AFCFS
	notify *syncsvc.NotifyLog
	apps   []syncsvc.App
	stats  *backupsvc.Stats
	enc    *backupsvc.Encryption
	// restore: Find My, a restore since the last boot, the last report.
	restore *backupsvc.RestoreState
}

func (d *Device) initServices() error {
	fs := d.cfg.Files
	set, err := fileset.New(fileset.Spec{Seed: fs.Seed, Files: fs.Count, MinSize: fs.MinSize, MaxSize: fs.MaxSize})
	if err != nil {
		return err
	}
	d.state = deviceState{
		files:  set,
		afc:    syncsvc.NewAFCFS(),
		notify: syncsvc.NewNotifyLog(),
		apps:   syncsvc.DefaultApps(),
		stats:  &backupsvc.Stats{},
		enc:    backupsvc.NewEncryption(d.cfg.BackupPassword),

		restore: backupsvc.NewRestoreState(),
	}
	return nil
}

func (d *Device) willEncrypt() bool { return d.state.enc.WillEncrypt() }

// handler returns what serves one connection to a started service.
func (d *Device) handler(name string) (func(net.Conn), bool) {
	serve := map[string]func(net.Conn) error{
		ServiceNotificationProxy: func(c net.Conn) error {
			ctx, cancel := d.sim.ctx()
			defer cancel()
			return syncsvc.ServeNotificationProxy(ctx, c, syncsvc.NotifyConfig{Log: d.state.notify})
		},
		ServiceAFC: func(c net.Conn) error {
			ctx, cancel := d.sim.ctx()
			defer cancel()
			f := d.Config().Faults
			return syncsvc.ServeAFC(ctx, c, syncsvc.AFCConfig{FS: d.state.afc, LockNeverGranted: f.LockNeverGranted, Model: d.Config().ProductType})
		},
		ServiceInstallationProxy: func(c net.Conn) error {
			ctx, cancel := d.sim.ctx()
			defer cancel()
			return syncsvc.ServeInstallationProxy(ctx, c, syncsvc.InstProxyConfig{Apps: d.state.apps})
		},
		ServiceSpringboard: func(c net.Conn) error {
			ctx, cancel := d.sim.ctx()
			defer cancel()
			return syncsvc.ServeSpringboard(ctx, c, syncsvc.SpringboardConfig{})
		},
		ServiceMobileBackup2: d.serveBackup,
	}[name]
	if serve == nil {
		return nil, false
	}
	return func(c net.Conn) {
		if err := serve(c); err != nil {
			d.sim.log.Debug("service ended", "udid", d.cfg.UDID, "service", name, "err", err)
		}
	}, true
}

func (d *Device) startService(name string, inSession, hasEscrow bool) (uint16, string) {
	if !inSession {
		return 0, errSessionInactive
	}
	h, ok := d.handler(name)
	if !ok {
		return 0, errInvalidService
	}
	if name == ServiceMobileBackup2 && !hasEscrow {
		return 0, errEscrowLocked
	}
	return d.registerService(name, h), ""
}

func (d *Device) mutate(share float64) int {
	d.mu.Lock()
	d.mutations++
	seed := d.cfg.Files.Seed*7919 + d.mutations
	d.mu.Unlock()
	return len(d.state.files.Mutate(share, seed))
}

// FileHashes maps the fileID of every regular file on the device to the
// hex SHA-256 of its current content.
func (d *Device) FileHashes() map[string]string {
	out := map[string]string{}
	for _, f := range d.state.files.Files() {
		if f.IsDir() || f.Deleted {
			continue
		}
		h := sha256.New()
		_, _ = io.Copy(h, f.Open())
		out[f.FileID] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// Notifications returns the names of the notifications hosts posted.
func (d *Device) Notifications() []string { return d.state.notify.Posted() }

// SyncLocked reports whether a host holds the sync lock.
func (d *Device) SyncLocked() bool { return d.state.afc.Locked("/com.apple.itunes.lock_sync") }
