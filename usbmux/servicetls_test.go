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
