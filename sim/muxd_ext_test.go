package sim_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/wire"
	. "github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// exchange writes raw bytes to the simulated usbmuxd and returns what it
// answered before closing or going quiet.
func exchange(t testing.TB, s *Sim, raw []byte) []byte {
	t.Helper()
	c, err := net.Dial("unix", s.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	go func() { _, _ = c.Write(raw) }()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.Bytes()
		}
	}
}

func TestMuxdHostileClient(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{})
	huge := make([]byte, 16)
	binary.LittleEndian.PutUint32(huge, 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(huge[4:], 1)
	binary.LittleEndian.PutUint32(huge[8:], 8)
	cases := []struct {
		name string
		raw  []byte
	}{
		{"random bytes", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"length shorter than header", []byte{4, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0}},
		{"4 GiB length", huge},
		{"binary protocol version 0", MuxPacket(0, 3, 1, make([]byte, 8))},
		{"not a plist", MuxPacket(1, 8, 1, []byte("<<<<garbage"))},
		{"truncated plist", MuxPacket(1, 8, 1, []byte(`<?xml version="1.0"?><plist><dict><key>MessageType</key>`))},
		{"wrong types", MuxPacket(1, 8, 1, []byte(`<plist><dict><key>MessageType</key><string>Connect</string><key>DeviceID</key><string>x</string></dict></plist>`))},
		{"unknown request", MuxPacket(1, 8, 7, []byte(`<plist><dict><key>MessageType</key><string>Frobnicate</string></dict></plist>`))},
		{"connect to no device", MuxPacket(1, 8, 2, []byte(`<plist><dict><key>MessageType</key><string>Connect</string><key>DeviceID</key><integer>999</integer><key>PortNumber</key><integer>32498</integer></dict></plist>`))},
		{"connect to closed port", MuxPacket(1, 8, 2, []byte(`<plist><dict><key>MessageType</key><string>Connect</string><key>DeviceID</key><integer>1</integer><key>PortNumber</key><integer>1</integer></dict></plist>`))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := exchange(t, s, tc.raw)
			if len(out) == 0 {
				return // closed without a word: acceptable
			}
			h, payload, err := wire.ReadMuxPacket(bytes.NewReader(out), wire.MaxMuxPayload)
			if err != nil {
				t.Fatalf("answer is not a usbmux packet: %v (%q)", err, out)
			}
			var r struct {
				MessageType string
				Number      int
			}
			if err := wire.Decode(payload, &r); err != nil || r.MessageType != "Result" || r.Number == 0 {
				t.Fatalf("want an error Result, got tag %d %q", h.Tag, payload)
			}
		})
	}
	// The simulator still serves after all that.
	out := exchange(t, s, MuxPacket(1, 8, 9, []byte(`<plist><dict><key>MessageType</key><string>ListDevices</string></dict></plist>`)))
	if !bytes.Contains(out, []byte(devs[0].UDID())) {
		t.Fatalf("ListDevices after hostile clients: %q", out)
	}
}

func TestMuxdListenPushesAttachAndDetach(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{})
	c, err := net.Dial("unix", s.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(MuxPacket(1, 8, 1, []byte(`<plist><dict><key>MessageType</key><string>Listen</string></dict></plist>`))); err != nil {
		t.Fatal(err)
	}
	next := func() map[string]any {
		_, p, err := wire.ReadMuxPacket(c, wire.MaxMuxPayload)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := wire.Decode(p, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := next(); m["MessageType"] != "Result" {
		t.Fatalf("want Result, got %v", m)
	}
	m := next()
	if m["MessageType"] != "Attached" {
		t.Fatalf("want Attached for the plugged device, got %v", m)
	}
	id := m["DeviceID"]
	devs[0].Unplug()
	m = next()
	if m["MessageType"] != "Detached" || m["DeviceID"] != id || len(m) != 2 {
		t.Fatalf("want Detached carrying only DeviceID %v, got %v", id, m)
	}
	devs[0].Plug()
	if m := next(); m["MessageType"] != "Attached" || m["DeviceID"] == id {
		t.Fatalf("replug should attach with a new DeviceID, got %v", m)
	}
}

// With Preflight, usbmuxd raises the Trust dialog at plug-in and saves
// its own pair record when the user taps Trust, as Linux's usbmuxd does.
func TestPreflightPairsOnTrust(t *testing.T) {
	dir, err := os.MkdirTemp("", "sim")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s := New(Options{Socket: filepath.Join(dir, "mux.sock"), Preflight: true})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, err := s.AddDevice(DeviceConfig{Pairing: Unpaired})
	if err != nil {
		t.Fatal(err)
	}
	paired, err := s.AddDevice(DeviceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", s.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(MuxPacket(1, 8, 1, []byte(`<plist><dict><key>MessageType</key><string>Listen</string></dict></plist>`))); err != nil {
		t.Fatal(err)
	}
	next := func() string {
		_, p, err := wire.ReadMuxPacket(c, wire.MaxMuxPayload)
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ MessageType string }
		_ = wire.Decode(p, &m)
		return m.MessageType
	}
	next() // Result
	paired.Plug()
	d.Plug()
	next()
	next()
	if paired.TrustPending() {
		t.Error("a device that trusts the stored record shows the Trust dialog")
	}
	if !d.TrustPending() {
		t.Fatal("preflight did not raise the Trust dialog at plug-in")
	}
	if _, ok := s.PairRecord(d.UDID()); ok {
		t.Fatal("a pair record exists before the user tapped Trust")
	}
	d.TapTrust()
	if got := next(); got != "Paired" {
		t.Fatalf("after Trust usbmuxd pushed %q, want Paired", got)
	}
	rec, ok := s.PairRecord(d.UDID())
	if !ok || d.Validate(rec.HostID) != "" {
		t.Fatal("usbmuxd did not save a pair record the device trusts")
	}
}
