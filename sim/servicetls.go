package sim

import (
	"crypto/tls"
	"maps"
	"net"
	"slices"
	"time"
)

// tlsConfig is the device's side of a lockdown session's or a service's
// TLS: it shows the device certificate it gave the host when they paired.
func (d *Device) tlsConfig(deviceCert []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(deviceCert, pemKey(d.key))
	if err != nil {
		return nil, err
	}
	maxVersion := d.Config().TLSMaxVersion
	if maxVersion == 0 {
		maxVersion = tls.VersionTLS12
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		// Hosts present either the root (libimobiledevice) or the host
		// certificate (go-ios, pymobiledevice3); the device checks neither.
		ClientAuth:             tls.RequestClientCert,
		MinVersion:             tls.VersionTLS12,
		MaxVersion:             maxVersion,
		SessionTicketsDisabled: true,
	}, nil
}

// serviceTLS reports whether the device answers StartService for name
// with EnableServiceSSL: on Wi-Fi every service runs over TLS, on USB
// only those the configuration names.
func (d *Device) serviceTLS(name string) bool {
	c := d.Config()
	return c.ConnType == Network || slices.Contains(c.ServiceTLS, name)
}

// overTLS serves h over TLS. Both public hosts keep TLS on for the whole
// connection of mobilebackup2, AFC and notification_proxy (only the old
// debugserver and instruments services drop to plain text after the
// handshake), so the device does too.
func (d *Device) overTLS(name string, deviceCert []byte, h func(net.Conn)) func(net.Conn) {
	return func(c net.Conn) {
		cfg, err := d.tlsConfig(deviceCert)
		if err != nil {
			d.sim.log.Debug("service TLS: certificate", "service", name, "err", err)
			return
		}
		t := tls.Server(c, cfg)
		_ = c.SetDeadline(time.Now().Add(lockdownIOTimeout))
		if err := t.Handshake(); err != nil {
			d.sim.log.Debug("service TLS handshake failed", "udid", d.cfg.UDID, "service", name, "err", err)
			return
		}
		_ = c.SetDeadline(time.Time{})
		st := t.ConnectionState()
		seen := TLSConn{Version: st.Version}
		if len(st.PeerCertificates) > 0 {
			seen.ClientCert = st.PeerCertificates[0].Raw
		}
		d.mu.Lock()
		if d.serviceTLSSeen == nil {
			d.serviceTLSSeen = map[string]TLSConn{}
		}
		d.serviceTLSSeen[name] = seen
		d.mu.Unlock()
		h(t)
		// Say goodbye in TLS, as the device does, without waiting on a
		// host that may be gone.
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_ = t.Close()
	}
}

// TLSConn is what the device saw of a service's TLS connection.
type TLSConn struct {
	Version    uint16 // tls.VersionTLS12, tls.VersionTLS13
	ClientCert []byte // DER of the certificate the host presented, if any
}

// ServiceTLS maps each service that ran over TLS to what the device saw
// of its last connection.
func (d *Device) ServiceTLS() map[string]TLSConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.serviceTLSSeen)
}

// ServiceTLSVersions maps each service that ran over TLS to the TLS
// version of its last connection.
func (d *Device) ServiceTLSVersions() map[string]uint16 {
	out := map[string]uint16{}
	for name, c := range d.ServiceTLS() {
		out[name] = c.Version
	}
	return out
}
