package usbmux

import (
	"bytes"
	"crypto/tls"
	"testing"

	"github.com/backupd/backupd/proto/afc"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// TestServiceTLS: when StartService answers EnableServiceSSL, the
// connection the host gets speaks TLS from its first byte, presents the
// pair record's host certificate, accepts only the record's device
// certificate, and carries the service's protocol (an AFC exchange here).
func TestServiceTLS(t *testing.T) {
	cases := []struct {
		name    string
		cfg     sim.DeviceConfig
		version uint16
	}{
		{"USB, AFC over TLS 1.2", sim.DeviceConfig{ServiceTLS: []string{lockdown.ServiceAFC}}, tls.VersionTLS12},
		{"USB, AFC over TLS 1.3", sim.DeviceConfig{ServiceTLS: []string{lockdown.ServiceAFC}, TLSMaxVersion: tls.VersionTLS13}, tls.VersionTLS13},
		{"Wi-Fi, every service", sim.DeviceConfig{ConnType: sim.Network, TLSMaxVersion: tls.VersionTLS13}, tls.VersionTLS13},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, devs := simtest.StartT(t, tc.cfg)
			c := simClient(t, s)
			dev := simDevice(t, c, devs[0])
			ctx := testCtx(t)
			sess, err := c.OpenSession(ctx, dev)
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			svc, err := sess.StartService(ctx, lockdown.ServiceAFC, false)
			if err != nil {
				t.Fatal(err)
			}
			if !svc.SSL {
				t.Fatalf("StartService answered %+v, want EnableServiceSSL", svc)
			}
			conn, err := sess.DialService(ctx, svc)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			tc2, ok := conn.(*tls.Conn)
			if !ok {
				t.Fatalf("service connection is a %T, want TLS", conn)
			}
			st := tc2.ConnectionState()
			devDER, err := sess.PairRecord().deviceCertDER()
			if err != nil {
				t.Fatal(err)
			}
			if st.Version != tc.version || len(st.PeerCertificates) == 0 || !bytes.Equal(st.PeerCertificates[0].Raw, devDER) {
				t.Fatalf("TLS version %#x, device certificate pinned: %t", st.Version, len(st.PeerCertificates) > 0 && bytes.Equal(st.PeerCertificates[0].Raw, devDER))
			}
			info, err := afc.NewClient(conn).DeviceInfo(ctx)
			if err != nil || len(info) == 0 {
				t.Fatalf("AFC DeviceInfo over TLS: %v %v", info, err)
			}
			kp, err := sess.PairRecord().hostKeyPair()
			if err != nil {
				t.Fatal(err)
			}
			seen := devs[0].ServiceTLS()[lockdown.ServiceAFC]
			if seen.Version != tc.version || !bytes.Equal(seen.ClientCert, kp.Certificate[0]) {
				t.Fatalf("the device saw TLS %#x and client certificate match %t", seen.Version, bytes.Equal(seen.ClientCert, kp.Certificate[0]))
			}
		})
	}
}

// TestLockdownPlainAfterStopSession: at TLS 1.2 and 1.3 alike, the
// lockdown connection is plain text again after StopSession, both sides
// having exchanged close_notify. (TLS 1.3 sends the alert as an
// application-data record; a device that looked for an alert record
// would take it for a plain request and drop the connection.)
func TestLockdownPlainAfterStopSession(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			s, devs := simtest.StartT(t, sim.DeviceConfig{TLSMaxVersion: v})
			c := simClient(t, s)
			dev := simDevice(t, c, devs[0])
			ctx := testCtx(t)
			rec, err := c.ReadPairRecord(ctx, dev.UDID)
			if err != nil {
				t.Fatal(err)
			}
			l, err := c.DialLockdown(ctx, dev)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			for i := range 2 {
				if _, err := l.StartSession(ctx, rec); err != nil {
					t.Fatalf("session %d: %v", i, err)
				}
				if err := l.StopSession(ctx); err != nil {
					t.Fatalf("StopSession %d: %v", i, err)
				}
				if typ, err := l.QueryType(ctx); err != nil || typ != lockdown.Type {
					t.Fatalf("plain QueryType after session %d: %q, %v", i, typ, err)
				}
			}
		})
	}
}
