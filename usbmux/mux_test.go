package usbmux

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

func TestListDevicesAgainstSim(t *testing.T) {
	s, devs := simtest.StartT(t,
		sim.DeviceConfig{Speed: 5_000_000_000},
		sim.DeviceConfig{ConnType: sim.Network},
	)
	c := simClient(t, s)
	list, err := c.ListDevices(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("listed %d devices, want 2: %+v", len(list), list)
	}
	want := map[string]Device{
		devs[0].UDID(): {UDID: devs[0].UDID(), ConnType: ConnUSB, Speed: 5_000_000_000},
		devs[1].UDID(): {UDID: devs[1].UDID(), ConnType: ConnNetwork, Speed: 480_000_000},
	}
	for _, d := range list {
		w, ok := want[d.UDID]
		if !ok || d.ConnType != w.ConnType || d.Speed != w.Speed || d.DeviceID == 0 {
			t.Errorf("listed %+v, want %+v", d, w)
		}
	}
	devs[0].Unplug()
	list, err = c.ListDevices(testCtx(t))
	if err != nil || len(list) != 1 || list[0].UDID != devs[1].UDID() {
		t.Fatalf("after unplug: %+v, %v", list, err)
	}
}

func TestPairRecordsAgainstSim(t *testing.T) {
	s, devs := simtest.StartT(t, sim.DeviceConfig{}, sim.DeviceConfig{Pairing: sim.Unpaired})
	c := simClient(t, s)
	ctx := testCtx(t)

	buid, err := c.ReadBUID(ctx)
	if err != nil || buid != s.BUID() {
		t.Fatalf("ReadBUID = %q, %v; want %q", buid, err, s.BUID())
	}
	rec, err := c.ReadPairRecord(ctx, devs[0].UDID())
	if err != nil {
		t.Fatal(err)
	}
	simRec, _ := s.PairRecord(devs[0].UDID())
	if rec.HostID != simRec.HostID || !bytes.Equal(rec.EscrowBag, simRec.EscrowBag) || rec.SystemBUID != buid {
		t.Fatalf("record %+v does not match the simulator's %+v", rec, simRec)
	}

	_, err = c.ReadPairRecord(ctx, devs[1].UDID())
	if !errors.Is(err, ErrNoPairRecord) {
		t.Fatalf("unpaired device: %v, want ErrNoPairRecord", err)
	}
	wantCause(t, err, cause.NotPaired)

	// Save the first device's record under the second's UDID, read it
	// back, delete it.
	dev1 := simDevice(t, c, devs[1])
	if err := c.SavePairRecord(ctx, devs[1].UDID(), dev1.DeviceID, rec); err != nil {
		t.Fatal(err)
	}
	back, err := c.ReadPairRecord(ctx, devs[1].UDID())
	if err != nil || back.HostID != rec.HostID {
		t.Fatalf("read back %+v, %v", back, err)
	}
	if err := c.DeletePairRecord(ctx, devs[1].UDID()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadPairRecord(ctx, devs[1].UDID()); !errors.Is(err, ErrNoPairRecord) {
		t.Fatalf("after delete: %v", err)
	}
	var re *MuxResultError
	if err := c.DeletePairRecord(ctx, devs[1].UDID()); !errors.As(err, &re) {
		t.Fatalf("deleting a missing record: %v, want a MuxResultError", err)
	}
	if _, err := c.ReadPairRecord(ctx, "../../etc"); err == nil {
		t.Fatal("a UDID with path characters was accepted")
	}
}

func TestConnectToGoneDeviceIsDisconnected(t *testing.T) {
	s, devs := simtest.StartT(t, sim.DeviceConfig{})
	c := simClient(t, s)
	dev := simDevice(t, c, devs[0])
	devs[0].Unplug()
	_, err := c.Connect(testCtx(t), dev.DeviceID, lockdown.Port)
	var re *MuxResultError
	if !errors.As(err, &re) || re.Number != muxResultBadDevice {
		t.Fatalf("connect to an unplugged device: %v", err)
	}
	wantCause(t, err, cause.Disconnected)
}

func TestUsbmuxdAbsentIsUnavailable(t *testing.T) {
	c := NewClient(Config{Addr: Addr{Network: "unix", Address: shortSocketPath(t)}})
	_, err := c.ListDevices(testCtx(t))
	wantCause(t, err, cause.UsbmuxdUnavailable)
	if _, err := c.ReadPairRecord(testCtx(t), "abc"); cause.Of(err) != cause.UsbmuxdUnavailable {
		t.Fatalf("ReadPairRecord: %v", err)
	}
}

// TestBadUsbmuxdReplies scripts a usbmuxd that answers ListDevices with
// something odd: each must be an error with its cause, never a panic or a
// hang.
func TestBadUsbmuxdReplies(t *testing.T) {
	rawHeader := func(length, version, msg, tag uint32) []byte {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint32(b[0:], length)
		binary.LittleEndian.PutUint32(b[4:], version)
		binary.LittleEndian.PutUint32(b[8:], msg)
		binary.LittleEndian.PutUint32(b[12:], tag)
		return b
	}
	plistPacket := func(version, msg, tag uint32, body string) []byte {
		return append(rawHeader(uint32(16+len(body)), version, msg, tag), body...)
	}
	dict := func(inner string) string { return "<plist><dict>" + inner + "</dict></plist>" }
	goodDev := "<dict><key>MessageType</key><string>Attached</string><key>DeviceID</key><integer>1</integer>" +
		"<key>Properties</key><dict><key>ConnectionType</key><string>USB</string><key>SerialNumber</key><string>%s</string></dict></dict>"
	list := func(entries ...string) string {
		s := "<key>DeviceList</key><array>"
		for _, e := range entries {
			s += e
		}
		return dict(s + "</array>")
	}
	sprintf := func(f, a string) string { return string(bytes.ReplaceAll([]byte(f), []byte("%s"), []byte(a))) }

	tests := []struct {
		name  string
		reply func(tag uint32) []byte // nil: close without answering
		want  cause.Code
	}{
		{"closes", nil, cause.UsbmuxdUnavailable},
		{"wrong tag", func(tag uint32) []byte { return plistPacket(1, 8, tag+7, list()) }, cause.ProtocolError},
		{"binary protocol", func(tag uint32) []byte { return plistPacket(0, 1, tag, list()) }, cause.ProtocolError},
		{"not a plist", func(tag uint32) []byte { return plistPacket(1, 8, tag, "hello") }, cause.ProtocolError},
		{"empty payload", func(tag uint32) []byte { return plistPacket(1, 8, tag, "") }, cause.ProtocolError},
		{"short length", func(tag uint32) []byte { return rawHeader(3, 1, 8, tag) }, cause.ProtocolError},
		{"huge length", func(tag uint32) []byte { return rawHeader(0xffffffff, 1, 8, tag) }, cause.ProtocolError},
		{"truncated", func(tag uint32) []byte { return rawHeader(100, 1, 8, tag) }, cause.UsbmuxdUnavailable},
		{"no DeviceList", func(tag uint32) []byte { return plistPacket(1, 8, tag, dict("")) }, cause.ProtocolError},
		{"DeviceList not an array", func(tag uint32) []byte {
			return plistPacket(1, 8, tag, dict("<key>DeviceList</key><string>x</string>"))
		}, cause.ProtocolError},
		{"result 1", func(tag uint32) []byte {
			return plistPacket(1, 8, tag, dict("<key>MessageType</key><string>Result</string><key>Number</key><integer>1</integer>"))
		}, cause.ProtocolError},
		{"duplicate DeviceID", func(tag uint32) []byte {
			return plistPacket(1, 8, tag, list(sprintf(goodDev, "a"), sprintf(goodDev, "b")))
		}, cause.ProtocolError},
		{"DeviceID 0", func(tag uint32) []byte {
			return plistPacket(1, 8, tag, list("<dict><key>Properties</key><dict><key>ConnectionType</key><string>USB</string><key>SerialNumber</key><string>a</string></dict></dict>"))
		}, cause.ProtocolError},
		{"DeviceID too big", func(tag uint32) []byte {
			return plistPacket(1, 8, tag, list("<dict><key>DeviceID</key><integer>4294967296</integer><key>Properties</key><dict><key>ConnectionType</key><string>USB</string><key>SerialNumber</key><string>a</string></dict></dict>"))
		}, cause.ProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeMux(t, func(_ int, c net.Conn) {
				tag, _, err := readReq(c)
				if err != nil || tt.reply == nil {
					return
				}
				_, _ = c.Write(tt.reply(tag))
			})
			c := NewClient(Config{Addr: f.addr, Timeout: 2 * time.Second})
			list, err := c.ListDevices(testCtx(t))
			if err == nil {
				t.Fatalf("accepted: %+v", list)
			}
			wantCause(t, err, tt.want)
		})
	}
}

func TestUsbmuxdThatNeverAnswers(t *testing.T) {
	f := startFakeMux(t, func(_ int, c net.Conn) {
		_, _, _ = readReq(c)
		_, _ = c.Read(make([]byte, 1)) // until the client gives up
	})
	t.Run("timeout", func(t *testing.T) {
		c := NewClient(Config{Addr: f.addr, Timeout: 100 * time.Millisecond})
		start := time.Now()
		_, err := c.ListDevices(testCtx(t))
		if time.Since(start) > 2*time.Second {
			t.Fatalf("took %v", time.Since(start))
		}
		wantCause(t, err, cause.UsbmuxdUnavailable)
	})
	t.Run("cancel", func(t *testing.T) {
		c := NewClient(Config{Addr: f.addr, Timeout: time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.ListDevices(ctx)
		if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
			t.Fatalf("after %v: %v", time.Since(start), err)
		}
	})
}

func TestDecodeMuxPacketRejectsOtherProtocols(t *testing.T) {
	_, err := decodeMuxPacket(wire.MuxHeader{Version: 0, Message: 1}, []byte("<plist><dict/></plist>"))
	wantCause(t, err, cause.ProtocolError)
}
