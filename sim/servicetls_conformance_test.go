package sim_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/lockdown"
	. "github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// tlsServices are the services a backup uses; a phone on Wi-Fi runs each
// of them over TLS, and a USB one may.
var tlsServices = []string{lockdown.ServiceMobileBackup2, lockdown.ServiceAFC, lockdown.ServiceNotificationProxy}

// TestIdevicebackup2ServiceTLS: Debian's idevicebackup2 backs up, in full
// and then incrementally, a device whose backup services ask for TLS
// (EnableServiceSSL), at TLS 1.2 and at TLS 1.3. If it could not, the
// simulator's service TLS would be wrong, not the tool.
func TestIdevicebackup2ServiceTLS(t *testing.T) {
	for _, v := range []struct {
		name    string
		version uint16
	}{{"TLS 1.2", tls.VersionTLS12}, {"TLS 1.3", tls.VersionTLS13}} {
		t.Run(v.name, func(t *testing.T) {
			s, devs := simtest.StartT(t, DeviceConfig{
				Files:         FileSpec{Count: 120, MinSize: 1, MaxSize: 128 << 10},
				ServiceTLS:    tlsServices,
				TLSMaxVersion: v.version,
			})
			d := devs[0]
			dir := t.TempDir()
			out, err := runTool(t, s, 3*time.Minute, "idevicebackup2", "-u", d.UDID(), "backup", "--full", dir)
			if err != nil || !strings.Contains(out, "Backup Successful.") {
				t.Fatalf("full backup over TLS: %v\n%s", err, out)
			}
			checkBackupMatches(t, dir, d)
			checkServiceTLS(t, d, v.version)

			changed := d.Mutate(0.02)
			out, err = runTool(t, s, 3*time.Minute, "idevicebackup2", "-u", d.UDID(), "backup", dir)
			if err != nil || !strings.Contains(out, "Backup Successful.") {
				t.Fatalf("incremental backup over TLS: %v\n%s", err, out)
			}
			if st := d.BackupStats(); st.FilesSent != changed || st.LastFull {
				t.Fatalf("incremental backup sent %d files (full=%t), want the %d changed", st.FilesSent, st.LastFull, changed)
			}
			checkBackupMatches(t, dir, d)
		})
	}
}

// checkServiceTLS checks that every backup service ran over TLS at the
// given version.
func checkServiceTLS(t *testing.T, d *Device, version uint16) {
	t.Helper()
	got := d.ServiceTLSVersions()
	for _, svc := range tlsServices {
		if got[svc] != version {
			t.Errorf("%s ran over TLS version %#x, want %#x (all: %v)", svc, got[svc], version, got)
		}
	}
}

// TestIdevicebackup2RestoreServiceTLS: Debian's idevicebackup2 restores
// into a device whose services run over TLS 1.3, and every file arrives
// intact.
func TestIdevicebackup2RestoreServiceTLS(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{
		Files:         FileSpec{Count: 60},
		ServiceTLS:    tlsServices,
		TLSMaxVersion: tls.VersionTLS13,
	})
	d := devs[0]
	dir := t.TempDir()
	backupWithTool(t, s, d, dir)
	out, err := runTool(t, s, 3*time.Minute, "idevicebackup2", "-u", d.UDID(), "restore", "--system", dir)
	if err != nil || !strings.Contains(out, "Restore Successful.") {
		t.Fatalf("restore over TLS: %v\n%s", err, out)
	}
	if rep := d.LastRestore(); !rep.Done || rep.ErrorCode != 0 || rep.Asked != 60 || rep.Intact != 60 {
		t.Fatalf("the device did not get every file intact:\n%s", FormatRestoreReport(rep))
	}
	checkServiceTLS(t, d, tls.VersionTLS13)
}
