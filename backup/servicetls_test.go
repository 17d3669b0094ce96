package backup

import (
	"crypto/tls"
	"testing"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/sim"
)

// TestBackupOverServiceTLS: when lockdown starts the backup services with
// EnableServiceSSL, as a phone on Wi-Fi always does, the host speaks TLS
// on each of them with the pair record's certificates, and full and
// incremental backups commit, at TLS 1.2 and at TLS 1.3.
func TestBackupOverServiceTLS(t *testing.T) {
	services := []string{lockdown.ServiceMobileBackup2, lockdown.ServiceAFC, lockdown.ServiceNotificationProxy}
	cases := []struct {
		name    string
		cfg     sim.DeviceConfig
		version uint16
	}{
		{"USB, TLS 1.2", sim.DeviceConfig{ServiceTLS: services, TLSMaxVersion: tls.VersionTLS12}, tls.VersionTLS12},
		{"USB, TLS 1.3", sim.DeviceConfig{ServiceTLS: services, TLSMaxVersion: tls.VersionTLS13}, tls.VersionTLS13},
		{"Wi-Fi", sim.DeviceConfig{ConnType: sim.Network, TLSMaxVersion: tls.VersionTLS13}, tls.VersionTLS13},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Files = sim.FileSpec{Count: 150, MinSize: 1, MaxSize: 128 << 10}
			r := newRig(t, tc.cfg, testOptions(t))
			if res := r.mustBackup(Target{}); !res.Full {
				t.Fatalf("first backup not full: %+v", res)
			}
			checkMatchesDevice(t, r.latest(), r.dev)
			got := r.dev.ServiceTLSVersions()
			for _, svc := range services {
				if got[svc] != tc.version {
					t.Errorf("%s ran over TLS version %#x, want %#x (all: %v)", svc, got[svc], tc.version, got)
				}
			}

			changed := r.dev.Mutate(0.02)
			res := r.mustBackup(Target{})
			if st := r.dev.BackupStats(); res.Full || st.LastFull || st.FilesSent != changed {
				t.Fatalf("incremental backup: device sent %d files (full %t), %d changed; result %+v", st.FilesSent, st.LastFull, changed, res)
			}
			checkMatchesDevice(t, r.latest(), r.dev)
			if vs := r.versions(); len(vs) != 1 {
				t.Fatalf("versions after two backups: %v", vs)
			}
		})
	}
}

// TestRestoreOverServiceTLS: a restore to a phone on Wi-Fi, whose
// services all run over TLS, delivers every file intact.
func TestRestoreOverServiceTLS(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{ConnType: sim.Network, TLSMaxVersion: tls.VersionTLS13, Files: sim.FileSpec{Count: 80}}, testOptions(t))
	r.mustBackup(Target{})
	if res, err := r.restore(repo.LatestName, restoreOpts()); err != nil {
		t.Fatalf("restore over TLS: %v (%+v)", err, res)
	}
	requireIntact(t, r.dev, 80)
	if v := r.dev.ServiceTLSVersions()[lockdown.ServiceMobileBackup2]; v != tls.VersionTLS13 {
		t.Fatalf("mobilebackup2 ran over TLS version %#x, want TLS 1.3", v)
	}
}
