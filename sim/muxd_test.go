package sim

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/wire"
)

func muxPacket(version, message, tag uint32, payload []byte) []byte {
	var b bytes.Buffer
	_ = wire.WriteMuxPacket(&b, version, message, tag, payload)
	return b.Bytes()
}

// scriptConn is a connection whose peer sends data and then hangs up;
// what we write to it is discarded.
type scriptConn struct{ r *bytes.Reader }

func (c scriptConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c scriptConn) Close() error                     { return nil }
func (c scriptConn) LocalAddr() net.Addr              { return &net.UnixAddr{} }
func (c scriptConn) RemoteAddr() net.Addr             { return &net.UnixAddr{} }
func (c scriptConn) SetDeadline(time.Time) error      { return nil }
func (c scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzMuxd feeds arbitrary bytes to the simulated usbmuxd: it must answer
// or hang up, never panic.
func FuzzMuxd(f *testing.F) {
	f.Add(muxPacket(1, 8, 1, []byte(`<plist><dict><key>MessageType</key><string>ListDevices</string></dict></plist>`)))
	f.Add(muxPacket(1, 8, 1, []byte(`<plist><dict><key>MessageType</key><string>ReadPairRecord</string><key>PairRecordID</key><string>x</string></dict></plist>`)))
	f.Add(muxPacket(1, 8, 1, []byte(`<plist><dict><key>MessageType</key><string>SavePairRecord</string><key>PairRecordID</key><string>x</string><key>PairRecordData</key><data>YnBsaXN0MDA=</data></dict></plist>`)))
	f.Add(muxPacket(1, 8, 1, []byte(`<plist><dict><key>MessageType</key><string>Connect</string><key>DeviceID</key><integer>1</integer><key>PortNumber</key><integer>32498</integer></dict></plist>`)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	s := New(Options{})
	d, err := s.AddDevice(DeviceConfig{})
	if err != nil {
		f.Fatal(err)
	}
	d.Plug()
	f.Fuzz(func(t *testing.T, data []byte) {
		s.serveMux(scriptConn{bytes.NewReader(data)})
	})
}

// FuzzLockdownd feeds arbitrary frames to lockdownd.
func FuzzLockdownd(f *testing.F) {
	frame := func(p string) []byte {
		var b bytes.Buffer
		_ = wire.WriteFrame(&b, []byte(p))
		return b.Bytes()
	}
	f.Add(frame(`<plist><dict><key>Request</key><string>QueryType</string></dict></plist>`))
	f.Add(frame(`<plist><dict><key>Request</key><string>GetValue</string><key>Key</key><string>DeviceName</string></dict></plist>`))
	f.Add(frame(`<plist><dict><key>Request</key><string>GetValue</string><key>Domain</key><string>com.apple.mobile.battery</string></dict></plist>`))
	f.Add(frame(`<plist><dict><key>Request</key><string>Pair</string><key>PairRecord</key><dict><key>HostID</key><string>A</string></dict></dict></plist>`))
	f.Add(frame(`<plist><dict><key>Request</key><string>StartSession</string><key>HostID</key><integer>1</integer></dict></plist>`))
	f.Add(frame(`<plist><dict><key>Request</key><string>StartService</string><key>Service</key><string>com.apple.afc</string></dict></plist>`))
	s := New(Options{})
	d, err := s.AddDevice(DeviceConfig{Pairing: Unpaired})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d.serveLockdown(scriptConn{bytes.NewReader(data)})
	})
}
