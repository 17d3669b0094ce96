package sim

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/proto/wire"
)

// Lockdown error strings, as the device sends them.
const (
	errPasswordProtected = "PasswordProtected"
	errUserDenied        = "UserDeniedPairing"
	errDialogPending     = "PairingDialogResponsePending"
	errInvalidHostID     = "InvalidHostID"
	errSessionInactive   = "SessionInactive"
	errInvalidService    = "InvalidService"
	errEscrowLocked      = "EscrowLocked"
	errMissingValue      = "MissingValue"
	errGetProhibited     = "GetProhibited"
	errInvalidRequest    = "InvalidRequest"
	errNotPaired         = "InvalidPairRecord"
)

// maxLockdownFrame bounds one lockdown request; real ones are a few KiB.
const maxLockdownFrame = 1 << 20

// lockdownIOTimeout bounds every wait inside the TLS switch.
const lockdownIOTimeout = 10 * time.Second

// bufConn lets the session peek at the plain stream after TLS ends.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

type lockdownSession struct {
	d      *Device
	raw    *bufConn
	tls    *tls.Conn
	rw     io.ReadWriter
	id     string
	hostID string
}

// serveLockdown runs lockdownd on one connection until it closes.
func (d *Device) serveLockdown(conn net.Conn) {
	raw := &bufConn{Conn: conn, r: bufio.NewReader(conn)}
	ls := &lockdownSession{d: d, raw: raw, rw: raw}
	for {
		b, err := wire.ReadFrame(ls.rw, maxLockdownFrame)
		if err != nil {
			return
		}
		var req map[string]any
		if err := wire.Decode(b, &req); err != nil {
			d.sim.log.Debug("lockdownd: malformed request", "err", err)
			return
		}
		name, _ := req["Request"].(string)
		d.sim.log.Debug("lockdownd request", "udid", d.cfg.UDID, "request", name)
		reply, after := ls.handle(name, req)
		reply["Request"] = name
		if err := ls.writeReply(reply); err != nil {
			return
		}
		if after != nil {
			if err := after(); err != nil {
				d.sim.log.Debug("lockdownd: session switch failed", "err", err)
				return
			}
		}
		if name == "Goodbye" {
			return
		}
	}
}

// writeReply sends a reply: XML, as libimobiledevice's tools expect, or
// under the hostile-name fault a binary plist that carries the name's
// bytes as they are.
func (ls *lockdownSession) writeReply(reply map[string]any) error {
	name := HostileName(ls.d.Config().Faults.HostileName)
	if name == "" {
		return wire.WritePlist(ls.rw, reply, wire.XML)
	}
	data, err := encodeHostileReply(reply, name)
	if err != nil {
		return err
	}
	return wire.WriteFrame(ls.rw, data)
}

func fail(code string) map[string]any { return map[string]any{"Error": code} }

// handle answers one request; after, when set, runs once the reply is out.
func (ls *lockdownSession) handle(name string, req map[string]any) (map[string]any, func() error) {
	d := ls.d
	switch name {
	case "QueryType":
		return map[string]any{"Type": lockdown.Type}, nil
	case "GetValue":
		domain, _ := req["Domain"].(string)
		key, _ := req["Key"].(string)
		v, errCode := d.value(domain, key, ls.id != "")
		if errCode != "" {
			return fail(errCode), nil
		}
		r := map[string]any{"Value": v}
		if domain != "" {
			r["Domain"] = domain
		}
		if key != "" {
			r["Key"] = key
		}
		return r, nil
	case "SetValue", "RemoveValue":
		if ls.id == "" {
			return fail(errSessionInactive), nil
		}
		return map[string]any{}, nil
	case "StartSession":
		hostID, _ := req["HostID"].(string)
		cert, errCode := d.startSession(hostID)
		if errCode != "" {
			return fail(errCode), nil
		}
		ls.id = newUUID()
		ls.hostID = hostID
		return map[string]any{"SessionID": ls.id, "EnableSessionSSL": true}, func() error {
			return ls.startTLS(cert)
		}
	case "StopSession":
		if ls.id == "" {
			return fail(errSessionInactive), nil
		}
		ls.id = ""
		return map[string]any{}, ls.stopTLS
	case "StartService":
		svc, _ := req["Service"].(string)
		_, hasEscrow := req["EscrowBag"]
		port, ssl, errCode := d.startService(svc, ls.id != "", hasEscrow, ls.hostID)
		if errCode != "" {
			return fail(errCode), nil
		}
		reply := map[string]any{"Service": svc, "Port": int(port)}
		if ssl {
			reply["EnableServiceSSL"] = true
		}
		return reply, nil
	case "ValidatePair":
		rec, _ := req["PairRecord"].(map[string]any)
		hostID, _ := rec["HostID"].(string)
		if errCode := d.validate(hostID); errCode != "" {
			return fail(errCode), nil
		}
		return map[string]any{}, nil
	case "Pair":
		rec, _ := req["PairRecord"].(map[string]any)
		hostID, _ := rec["HostID"].(string)
		devCert, _ := rec["DeviceCertificate"].([]byte)
		escrow, errCode := d.pair(hostID, devCert)
		if errCode != "" {
			return fail(errCode), nil
		}
		return map[string]any{"EscrowBag": escrow}, nil
	case "Unpair":
		rec, _ := req["PairRecord"].(map[string]any)
		hostID, _ := rec["HostID"].(string)
		d.mu.Lock()
		delete(d.trusted, hostID)
		d.mu.Unlock()
		return map[string]any{}, nil
	case "Goodbye":
		return map[string]any{}, nil
	default:
		return fail(errInvalidRequest), nil
	}
}

func (ls *lockdownSession) startTLS(deviceCert []byte) error {
	cfg, err := ls.d.tlsConfig(deviceCert)
	if err != nil {
		return err
	}
	t := tls.Server(ls.raw, cfg)
	_ = ls.raw.SetDeadline(time.Now().Add(lockdownIOTimeout))
	if err := t.Handshake(); err != nil {
		return err
	}
	_ = ls.raw.SetDeadline(time.Time{})
	ls.tls = t
	ls.rw = t
	return nil
}

// stopTLS returns the connection to plain text. libimobiledevice sends a
// close_notify and waits for ours; go-ios just goes back to plain text, so
// peek at the next record before deciding.
func (ls *lockdownSession) stopTLS() error {
	t := ls.tls
	ls.tls, ls.rw = nil, ls.raw
	if t == nil {
		return nil
	}
	_ = ls.raw.SetReadDeadline(time.Now().Add(lockdownIOTimeout))
	defer func() { _ = ls.raw.SetDeadline(time.Time{}) }()
	first, err := ls.raw.r.Peek(1)
	if err != nil {
		return err
	}
	// A plain request starts with a big-endian length under 16 MiB, so
	// its first byte is 0. A TLS record starts with its content type:
	// an alert (0x15) in TLS 1.2, application data (0x17) in TLS 1.3,
	// which encrypts the close_notify alert too.
	if first[0] == 0 { // the host went straight to plain text
		return nil
	}
	var buf [64]byte
	if _, err := t.Read(buf[:]); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return t.CloseWrite()
}

// value looks up a lockdown value. Without a session only the public
// root-domain keys answer, as on a real device.
func (d *Device) value(domain, key string, inSession bool) (any, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.cfg
	total := uint64(128 << 30)
	used := c.DiskUsed
	if used > total {
		total = used
	}
	name := c.Name
	if h := HostileName(c.Faults.HostileName); h != "" {
		name = h
	}
	root := map[string]any{
		"DeviceName":        name,
		"ProductVersion":    c.ProductVersion,
		"BuildVersion":      c.BuildVersion,
		"ProductType":       c.ProductType,
		"UniqueDeviceID":    c.UDID,
		"SerialNumber":      c.SerialNumber,
		"DeviceClass":       "iPhone",
		"ProductName":       "iPhone OS",
		"HardwareModel":     "D16AP",
		"CPUArchitecture":   "arm64e",
		"DevicePublicKey":   devicePublicKeyPEM(&d.key.PublicKey),
		"WiFiAddress":       "a4:c3:f0:00:00:01",
		"BluetoothAddress":  "a4:c3:f0:00:00:02",
		"UniqueChipID":      uint64(0x1234567890),
		"ActivationState":   "Activated",
		"PasswordProtected": d.locked,
		"TimeZone":          "Europe/Berlin",
		"PhoneNumber":       "+49 000 0000000",
	}
	public := map[string]bool{"DeviceName": true, "ProductVersion": true, "BuildVersion": true,
		"ProductType": true, "UniqueDeviceID": true, "DeviceClass": true, "ProductName": true,
		"DevicePublicKey": true, "WiFiAddress": true, "BluetoothAddress": true, "HardwareModel": true,
		"CPUArchitecture": true, "SerialNumber": true, "UniqueChipID": true, "ActivationState": true}
	domains := map[string]map[string]any{
		lockdown.DomainBackup: {"WillEncrypt": d.willEncrypt()},
		lockdown.DomainBattery: {
			"BatteryCurrentCapacity": c.BatteryLevel,
			"BatteryIsCharging":      c.Charging,
			"ExternalConnected":      c.Charging,
			"FullyCharged":           c.BatteryLevel >= 100,
		},
		lockdown.DomainDiskUsage: {
			"TotalDiskCapacity":   total + 8<<30,
			"TotalDataCapacity":   total,
			"TotalDataAvailable":  total - used,
			"AmountDataAvailable": total - used,
			"TotalSystemCapacity": uint64(8 << 30),
		},
		lockdown.DomainITunes:       {"MinITunesVersion": "10.0.1"},
		lockdown.DomainMobileITunes: {"MinITunesVersion": "10.0.1"},
	}
	if domain == "" {
		if key == "" {
			if !inSession {
				pub := map[string]any{}
				for k := range public {
					pub[k] = root[k]
				}
				return pub, ""
			}
			return root, ""
		}
		v, ok := root[key]
		if !ok {
			return nil, errMissingValue
		}
		if !inSession && !public[key] {
			return nil, errGetProhibited
		}
		return v, ""
	}
	if !inSession {
		return nil, errGetProhibited
	}
	dom, ok := domains[domain]
	if !ok {
		return nil, errMissingValue
	}
	if key == "" {
		return dom, ""
	}
	v, ok := dom[key]
	if !ok {
		return nil, errMissingValue
	}
	return v, ""
}

func (d *Device) startSession(hostID string) ([]byte, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cert, ok := d.trusted[hostID]
	if !ok {
		return nil, errInvalidHostID
	}
	if d.locked {
		return nil, errPasswordProtected
	}
	d.sessionOK++
	return cert, ""
}

func (d *Device) validate(hostID string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.trusted[hostID]; !ok {
		return errInvalidHostID
	}
	return ""
}

// pair plays the Trust dialog: the first request shows it, and the
// answer the simulated user gave decides the next.
func (d *Device) pair(hostID string, devCert []byte) ([]byte, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if hostID == "" || len(devCert) == 0 {
		return nil, errNotPaired
	}
	if d.locked {
		return nil, errPasswordProtected
	}
	if _, ok := d.trusted[hostID]; ok {
		d.trusted[hostID] = devCert
		return d.escrow, ""
	}
	switch d.dialog {
	case dialogAccepted:
		d.dialog = dialogNone
		d.trusted[hostID] = devCert
		return d.escrow, ""
	case dialogDenied:
		return nil, errUserDenied
	default:
		d.dialog = dialogPending
		return nil, errDialogPending
	}
}

// TrustPending reports whether the Trust dialog is showing.
func (d *Device) TrustPending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dialog == dialogPending
}
