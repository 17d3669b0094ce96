package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"

	"github.com/backupd/backupd/proto/afc"
	"github.com/backupd/backupd/proto/backupcrypt"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/sim/backupsvc"
	"github.com/backupd/backupd/sim/fileset"
	"github.com/backupd/backupd/sim/syncsvc"
)

// deviceState is what outlives one connection to a device's services.
type deviceState struct {
	files         *fileset.Set
	afc           *syncsvc.AFCFS
	notifications *syncsvc.NotificationCenter
	apps          []syncsvc.App
	stats         *backupsvc.Stats
	enc           *backupsvc.Encryption
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
		files:         set,
		afc:           syncsvc.NewAFCFS(),
		notifications: syncsvc.NewNotificationCenter(),
		apps:          syncsvc.DefaultApps(),
		stats:         &backupsvc.Stats{},
		enc:           backupsvc.NewEncryption(d.cfg.BackupPassword),
		restore:       backupsvc.NewRestoreState(),
	}
	if d.cfg.BackupKeyRounds != (backupcrypt.Params{}) {
		d.state.enc.SetParams(d.cfg.BackupKeyRounds)
	}
	return nil
}

func (d *Device) willEncrypt() bool { return d.state.enc.WillEncrypt() }

// handler returns what serves one connection to a started service. Each
// connection is served until the simulator stops.
func (d *Device) handler(name string) (func(net.Conn), bool) {
	serve := map[string]func(context.Context, net.Conn) error{
		lockdown.ServiceNotificationProxy: func(ctx context.Context, c net.Conn) error {
			return syncsvc.ServeNotificationProxy(ctx, c, syncsvc.NotificationConfig{Center: d.state.notifications})
		},
		lockdown.ServiceAFC: func(ctx context.Context, c net.Conn) error {
			cfg := d.Config()
			return syncsvc.ServeAFC(ctx, c, syncsvc.AFCConfig{FS: d.state.afc, LockNeverGranted: cfg.Faults.LockNeverGranted, Model: cfg.ProductType})
		},
		lockdown.ServiceInstallationProxy: func(ctx context.Context, c net.Conn) error {
			apps := d.state.apps
			if d.Config().Faults.Hostile == string(backupsvc.HostileAppFlood) {
				apps = floodApps()
			}
			return syncsvc.ServeInstallationProxy(ctx, c, syncsvc.InstProxyConfig{Apps: apps})
		},
		lockdown.ServiceSpringboard: func(ctx context.Context, c net.Conn) error {
			var icons map[string][]byte
			if d.Config().Faults.Hostile == string(backupsvc.HostileAppFlood) {
				icons = floodIcons()
			}
			return syncsvc.ServeSpringboard(ctx, c, syncsvc.SpringboardConfig{Icons: icons})
		},
		lockdown.ServiceMobileBackup2: d.serveBackup,
	}[name]
	if serve == nil {
		return nil, false
	}
	return func(c net.Conn) {
		ctx, cancel := d.sim.ctx()
		defer cancel()
		if err := serve(ctx, c); err != nil {
			d.sim.log.Debug("service ended", "udid", d.cfg.UDID, "service", name, "err", err)
		}
	}, true
}

// startService reserves a port for name. ssl says the service runs over
// TLS, with the device certificate the session's host paired with.
func (d *Device) startService(name string, inSession, hasEscrow bool, hostID string) (port uint16, ssl bool, errCode string) {
	if !inSession {
		return 0, false, errSessionInactive
	}
	h, ok := d.handler(name)
	if !ok {
		return 0, false, errInvalidService
	}
	if name == lockdown.ServiceMobileBackup2 && !hasEscrow {
		return 0, false, errEscrowLocked
	}
	if d.serviceTLS(name) {
		d.mu.Lock()
		cert, trusted := d.trusted[hostID]
		d.mu.Unlock()
		if !trusted {
			// Forgotten since the session started.
			return 0, false, errInvalidHostID
		}
		h, ssl = d.overTLS(name, cert, h), true
	}
	return d.registerService(name, h), ssl, ""
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

// Files returns the device's regular files as they are now, deleted ones
// included (check Deleted): their domain, path, size, time and, through
// Open, content.
func (d *Device) Files() []fileset.File { return d.state.files.Files() }

// Notifications returns the names of the notifications hosts posted.
func (d *Device) Notifications() []string { return d.state.notifications.Posted() }

// SyncLocked reports whether a host holds the sync lock.
func (d *Device) SyncLocked() bool { return d.state.afc.Locked(afc.SyncLockPath) }
