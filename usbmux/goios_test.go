package usbmux

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/proto/wire"
	ios "github.com/danielpaulus/go-ios/ios"
)

// muxPacket is a usbmux packet with any header.
func muxPacket(version, msg, tag uint32, body string) []byte {
	var b bytes.Buffer
	_ = wire.WriteMuxPacket(&b, version, msg, tag, []byte(body))
	return b.Bytes()
}

// plistPkt is a well-formed plist packet.
func plistPkt(t testing.TB, tag uint32, msg any) []byte {
	t.Helper()
	b, err := wire.Encode(msg, wire.XML)
	if err != nil {
		t.Fatal(err)
	}
	return muxPacket(wire.MuxVersionPlist, wire.MuxMessagePlist, tag, string(b))
}

func resultMsg(n int) map[string]any { return map[string]any{"MessageType": "Result", "Number": n} }

// deepPlist nests arrays far deeper than any real message: our decoder
// refuses it before the plist library recurses into it.
func deepPlist(depth int) string {
	return "<plist>" + strings.Repeat("<array>", depth) + strings.Repeat("</array>", depth) + "</plist>"
}

// TestGoIOSPanicBecomesError makes go-ios panic for real (Close after
// ReleaseDeviceConnection dereferences nil) and checks that goiosCall
// turns it into a protocol_error instead of a crash.
func TestGoIOSPanicBecomesError(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	u := ios.NewUsbMuxConnection(ios.NewDeviceConnectionWithConn(a))
	u.ReleaseDeviceConnection()
	err := goiosCall("usbmuxd test", func() { _ = u.Close() })
	wantCause(t, err, cause.ProtocolError)
	if !errors.Is(err, errGoIOSPanic) || !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("%v does not wrap errGoIOSPanic and wire.ErrMalformed", err)
	}
	if err := goiosCall("usbmuxd test", func() {}); err != nil {
		t.Fatalf("no panic: %v", err)
	}
}

// TestGoIOSAloneTakesGarbage pins down the go-ios behaviour that muxGuard
// and our checks exist for: run bare on a pipe, go-ios takes a garbage
// Listen or Connect reply for success, answers an empty BUID without an
// error for a refusal, and an empty device list for garbage. If this test
// fails after a go-ios upgrade, go-ios got stricter: the guard may shrink,
// and the comment in mux.go must change.
func TestGoIOSAloneTakesGarbage(t *testing.T) {
	run := func(reply []byte, call func(u *ios.UsbMuxConnection)) {
		t.Helper()
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go func() {
			if _, _, err := readReq(b); err == nil {
				_, _ = b.Write(reply)
			}
		}()
		_ = a.SetDeadline(time.Now().Add(5 * time.Second))
		call(ios.NewUsbMuxConnection(ios.NewDeviceConnectionWithConn(a)))
	}
	garbage := muxPacket(1, 8, 1, "<plist><dict><key>")
	run(garbage, func(u *ios.UsbMuxConnection) {
		if _, err := u.Listen(); err != nil {
			t.Logf("go-ios now refuses a garbage Listen reply: %v", err)
			t.Fail()
		}
	})
	run(garbage, func(u *ios.UsbMuxConnection) {
		if err := u.Connect(1, lockdown.Port); err != nil {
			t.Logf("go-ios now refuses a garbage Connect reply: %v", err)
			t.Fail()
		}
	})
	run(plistPkt(t, 1, resultMsg(1)), func(u *ios.UsbMuxConnection) {
		if buid, err := u.ReadBuid(); buid != "" || err != nil {
			t.Logf("go-ios ReadBuid of a refusal now answers %q, %v", buid, err)
			t.Fail()
		}
	})
	run(garbage, func(u *ios.UsbMuxConnection) {
		if list, err := u.ListDevices(); len(list.DeviceList) != 0 || err != nil {
			t.Logf("go-ios ListDevices of garbage now answers %+v, %v", list, err)
			t.Fail()
		}
	})
}

// TestGoIOSRequestsBadReplies scripts a usbmuxd that answers the requests
// go-ios sends for us with something odd: each must be an error with its
// cause, never a panic, a hang, or a success go-ios alone would report.
func TestGoIOSRequestsBadReplies(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := newPairRecord(&key.PublicKey, "BUID", "")
	if err != nil {
		t.Fatal(err)
	}
	good, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	noHost := *rec
	noHost.HostID = ""
	noHostData, _ := noHost.Marshal()

	garbage := func(tag uint32) []byte { return muxPacket(1, 8, tag, "<plist><dict><key>") }
	common := []struct {
		name  string
		reply func(tag uint32) []byte // nil: close without answering
		want  cause.Code
	}{
		{"closes", nil, cause.UsbmuxdUnavailable},
		{"garbage", garbage, cause.ProtocolError},
		{"wrong tag", func(tag uint32) []byte { return plistPkt(t, tag+1, resultMsg(0)) }, cause.ProtocolError},
		{"binary protocol", func(tag uint32) []byte { return muxPacket(0, 1, tag, "<plist><dict/></plist>") }, cause.ProtocolError},
		{"empty payload", func(tag uint32) []byte { return muxPacket(1, 8, tag, "") }, cause.ProtocolError},
		{"nested 10000 deep", func(tag uint32) []byte { return muxPacket(1, 8, tag, deepPlist(10000)) }, cause.ProtocolError},
		{"truncated header", func(tag uint32) []byte { return muxPacket(1, 8, tag, "")[:12] }, cause.UsbmuxdUnavailable},
		{"result 1", func(tag uint32) []byte { return plistPkt(t, tag, resultMsg(1)) }, cause.ProtocolError},
	}
	type reqCase struct {
		name  string
		reply func(tag uint32) []byte
		want  cause.Code
	}
	ops := []struct {
		name  string
		call  func(c *Client) error
		extra []reqCase
	}{
		{"Connect", func(c *Client) error {
			conn, err := c.Connect(testCtx(t), 1, lockdown.Port)
			if err == nil {
				conn.Close()
			}
			return err
		}, []reqCase{
			{"an Attached instead of a Result", func(tag uint32) []byte { return plistPkt(t, tag, attachedMsg(1, "a", "USB", 0)) }, cause.ProtocolError},
			{"no such device", func(tag uint32) []byte { return plistPkt(t, tag, resultMsg(2)) }, cause.Disconnected},
		}},
		{"ReadBUID", func(c *Client) error {
			_, err := c.ReadBUID(testCtx(t))
			return err
		}, []reqCase{
			{"no BUID", func(tag uint32) []byte { return plistPkt(t, tag, map[string]any{"Other": "x"}) }, cause.ProtocolError},
			{"result 0", func(tag uint32) []byte { return plistPkt(t, tag, resultMsg(0)) }, cause.ProtocolError},
		}},
		{"ReadPairRecord", func(c *Client) error {
			_, err := c.ReadPairRecord(testCtx(t), "abc")
			return err
		}, []reqCase{
			{"no record", func(tag uint32) []byte { return plistPkt(t, tag, resultMsg(2)) }, cause.NotPaired},
			{"record not a plist", func(tag uint32) []byte {
				return plistPkt(t, tag, map[string]any{"PairRecordData": []byte("bplist00 nonsense")})
			}, cause.PairingInvalid},
			{"record nested 10000 deep", func(tag uint32) []byte {
				return plistPkt(t, tag, map[string]any{"PairRecordData": []byte(deepPlist(10000))})
			}, cause.PairingInvalid},
			{"record without HostID", func(tag uint32) []byte {
				return plistPkt(t, tag, map[string]any{"PairRecordData": noHostData})
			}, cause.PairingInvalid},
			{"record of the wrong types", func(tag uint32) []byte {
				return plistPkt(t, tag, map[string]any{"PairRecordData": []byte("<plist><dict><key>HostID</key><integer>1</integer></dict></plist>")})
			}, cause.PairingInvalid},
		}},
	}
	for _, op := range ops {
		cases := op.extra
		for _, c := range common {
			cases = append(cases, reqCase(c))
		}
		for _, tt := range cases {
			t.Run(op.name+"/"+tt.name, func(t *testing.T) {
				f := startFakeMux(t, func(_ int, c net.Conn) {
					tag, typ, err := readReq(c)
					if err != nil || tt.reply == nil {
						return
					}
					if typ != op.name {
						t.Errorf("go-ios sent %q, want %q", typ, op.name)
						return
					}
					_, _ = c.Write(tt.reply(tag))
				})
				err := op.call(NewClient(Config{Addr: f.addr, Timeout: 2 * time.Second}))
				wantCause(t, err, tt.want)
				if errors.Is(err, errGoIOSPanic) {
					t.Fatalf("go-ios panicked: %v", err)
				}
			})
		}
	}

	// And the good answers work.
	f := startFakeMux(t, func(_ int, c net.Conn) {
		tag, typ, err := readReq(c)
		if err != nil {
			return
		}
		switch typ {
		case "ReadBUID":
			_ = sendMux(c, tag, map[string]any{"BUID": "THE-BUID"})
		case "ReadPairRecord":
			_ = sendMux(c, tag, map[string]any{"PairRecordData": good})
		}
	})
	c := NewClient(Config{Addr: f.addr, Timeout: 2 * time.Second})
	if buid, err := c.ReadBUID(testCtx(t)); buid != "THE-BUID" || err != nil {
		t.Fatalf("ReadBUID = %q, %v", buid, err)
	}
	back, err := c.ReadPairRecord(testCtx(t), "abc")
	if err != nil || !bytes.Equal(back.HostPrivateKey, rec.HostPrivateKey) || back.HostID != rec.HostID {
		t.Fatalf("ReadPairRecord = %+v, %v", back, err)
	}
}

// TestConnectHandsOverEveryByte sends the device's first bytes in the same
// write as the Connect reply: the guard must not read past the reply, or
// they would be lost.
func TestConnectHandsOverEveryByte(t *testing.T) {
	f := startFakeMux(t, func(_ int, c net.Conn) {
		tag, _, err := readReq(c)
		if err != nil {
			return
		}
		_, _ = c.Write(append(plistPkt(t, tag, resultMsg(0)), "device speaks first"...))
		_, _ = io.Copy(c, c) // then echo
	})
	c := NewClient(Config{Addr: f.addr, Timeout: 2 * time.Second})
	conn, err := c.Connect(testCtx(t), 7, 1234)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len("device speaks first"))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "device speaks first" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, got[:4]); err != nil || string(got[:4]) != "ping" {
		t.Fatalf("echo %q, %v", got[:4], err)
	}
}

// TestGoIOSRequestsDeadlines: go-ios has no deadlines; ours bound its
// exchanges, and cancelling the context cuts them short.
func TestGoIOSRequestsDeadlines(t *testing.T) {
	f := startFakeMux(t, func(_ int, c net.Conn) {
		_, _, _ = readReq(c)
		_, _ = c.Read(make([]byte, 1)) // until the client gives up
	})
	calls := map[string]func(ctx context.Context, c *Client) error{
		"Connect": func(ctx context.Context, c *Client) error {
			_, err := c.Connect(ctx, 1, lockdown.Port)
			return err
		},
		"ReadBUID": func(ctx context.Context, c *Client) error {
			_, err := c.ReadBUID(ctx)
			return err
		},
		"ReadPairRecord": func(ctx context.Context, c *Client) error {
			_, err := c.ReadPairRecord(ctx, "abc")
			return err
		},
	}
	for name, call := range calls {
		t.Run(name+"/timeout", func(t *testing.T) {
			c := NewClient(Config{Addr: f.addr, Timeout: 100 * time.Millisecond})
			start := time.Now()
			err := call(testCtx(t), c)
			if time.Since(start) > 2*time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
			wantCause(t, err, cause.UsbmuxdUnavailable)
		})
		t.Run(name+"/cancel", func(t *testing.T) {
			c := NewClient(Config{Addr: f.addr, Timeout: time.Minute})
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			start := time.Now()
			err := call(ctx, c)
			if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
				t.Fatalf("after %v: %v", time.Since(start), err)
			}
		})
	}
}

// TestWatcherListenRefusals answers the watcher's Listen with what go-ios
// alone would take for success: the watcher must report usbmuxd down with
// protocol_error, never up.
func TestWatcherListenRefusals(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reply func(tag uint32) []byte
	}{
		{"garbage", func(tag uint32) []byte { return muxPacket(1, 8, tag, "<plist><dict><key>") }},
		{"wrong tag", func(tag uint32) []byte { return plistPkt(t, tag+5, resultMsg(0)) }},
		{"an Attached instead of a Result", func(tag uint32) []byte { return plistPkt(t, tag, attachedMsg(1, "a", "USB", 0)) }},
		{"result 1", func(tag uint32) []byte { return plistPkt(t, tag, resultMsg(1)) }},
		{"nested 10000 deep", func(tag uint32) []byte { return muxPacket(1, 8, tag, deepPlist(10000)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeMux(t, func(_ int, c net.Conn) {
				tag, typ, err := readReq(c)
				if err != nil {
					return
				}
				switch typ {
				case "Listen":
					_, _ = c.Write(tt.reply(tag))
					_, _ = c.Read(make([]byte, 1))
				case "ListDevices":
					_ = sendMux(c, tag, map[string]any{"DeviceList": []any{}})
				}
			})
			w := NewWatcher(WatcherConfig{
				Client:  NewClient(Config{Addr: f.addr, Timeout: 2 * time.Second}),
				Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond},
			})
			runWatcher(t, w)
			ev := next(t, w)
			if ev.Kind != MuxDown {
				t.Fatalf("first event %+v, want MuxDown", ev)
			}
			wantCause(t, ev.Err, cause.ProtocolError)
			expectNone(t, w, 200*time.Millisecond)
		})
	}
}

// TestWatcherMalformedAttached pushes malformed Attached messages through
// go-ios's receive func: each ends the connection with protocol_error, the
// watcher reconnects, and nothing crashes.
func TestWatcherMalformedAttached(t *testing.T) {
	props := func(inner string) string {
		return "<plist><dict><key>MessageType</key><string>Attached</string><key>DeviceID</key><integer>9</integer>" + inner + "</dict></plist>"
	}
	for _, tt := range []struct{ name, body string }{
		{"DeviceID a string", "<plist><dict><key>MessageType</key><string>Attached</string><key>DeviceID</key><string>nine</string></dict></plist>"},
		{"DeviceID negative", "<plist><dict><key>MessageType</key><string>Attached</string><key>DeviceID</key><integer>-9</integer></dict></plist>"},
		{"DeviceID past int64", props("<key>Properties</key><dict><key>DeviceID</key><integer>18446744073709551615</integer></dict>")},
		{"Properties an array", props("<key>Properties</key><array><string>USB</string></array>")},
		{"SerialNumber a dict", props("<key>Properties</key><dict><key>SerialNumber</key><dict/></dict>")},
		{"ConnectionSpeed past int64", props("<key>Properties</key><dict><key>ConnectionType</key><string>USB</string>" +
			"<key>SerialNumber</key><string>X</string><key>ConnectionSpeed</key><integer>18446744073709551615</integer></dict>")},
		{"not a dictionary", "<plist><string>Attached</string></plist>"},
		{"nested 10000 deep", deepPlist(10000)},
		{"truncated binary plist", "bplist00\xd1\x01\x02"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			listens := make(chan struct{}, 100)
			f := startFakeMux(t, func(_ int, c net.Conn) {
				tag, typ, err := readReq(c)
				if err != nil {
					return
				}
				switch typ {
				case "Listen":
					listens <- struct{}{}
					_ = sendMux(c, tag, resultMsg(0))
					_ = sendMux(c, 0, attachedMsg(1, "GOOD", "USB", 480000000))
					if len(listens) == 1 {
						_, _ = c.Write(muxPacket(1, 8, 0, tt.body))
					}
					_, _ = c.Read(make([]byte, 1))
				case "ListDevices":
					_ = sendMux(c, tag, map[string]any{"DeviceList": []any{attachedMsg(1, "GOOD", "USB", 480000000)}})
				}
			})
			w := NewWatcher(WatcherConfig{
				Client:  NewClient(Config{Addr: f.addr}),
				Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond},
			})
			runWatcher(t, w)
			if ev := next(t, w); ev.Kind != MuxUp {
				t.Fatalf("%+v", ev)
			}
			expect(t, w, Attached, "GOOD", true)
			ev := next(t, w)
			if ev.Kind != MuxDown {
				t.Fatalf("after %s: %+v, want MuxDown", tt.name, ev)
			}
			wantCause(t, ev.Err, cause.ProtocolError)
			if errors.Is(ev.Err, errGoIOSPanic) {
				t.Errorf("go-ios panicked: %v", ev.Err)
			}
			if ev := next(t, w); ev.Kind != MuxUp {
				t.Fatalf("no reconnect: %+v", ev)
			}
			expectNone(t, w, 100*time.Millisecond)
			if devs := w.Devices(); len(devs) != 1 || devs[0].UDID != "GOOD" {
				t.Fatalf("devices %+v", devs)
			}
		})
	}
}

func TestFromAttachedMessage(t *testing.T) {
	m, err := fromAttachedMessage(ios.AttachedMessage{MessageType: "Detached", DeviceID: 4})
	if err != nil || m.MessageType != "Detached" || m.DeviceID != 4 || m.Properties != nil {
		t.Fatalf("Detached: %+v, %v", m, err)
	}
	m, err = fromAttachedMessage(ios.AttachedMessage{MessageType: "Attached", DeviceID: 4, Properties: ios.DeviceProperties{
		ConnectionSpeed: 480000000, ConnectionType: "USB", DeviceID: 4, LocationID: 5, ProductID: 0x12a8, SerialNumber: "abc",
	}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := deviceFromMessage(m)
	if err != nil || d != (Device{UDID: "abc", DeviceID: 4, ConnType: ConnUSB, Speed: 480000000, LocationID: 5, ProductID: 0x12a8}) {
		t.Fatalf("device %+v, %v", d, err)
	}
	for _, am := range []ios.AttachedMessage{
		{MessageType: "Detached", DeviceID: -1},
		{MessageType: "Attached", DeviceID: 1, Properties: ios.DeviceProperties{ConnectionSpeed: -1}},
		{MessageType: "Attached", DeviceID: 1, Properties: ios.DeviceProperties{DeviceID: -1}},
		{MessageType: "Attached", DeviceID: 1, Properties: ios.DeviceProperties{LocationID: -1}},
		{MessageType: "Attached", DeviceID: 1, Properties: ios.DeviceProperties{ProductID: -1}},
	} {
		_, err := fromAttachedMessage(am)
		wantCause(t, err, cause.ProtocolError)
	}
}

// scriptConn is a net.Conn that reads a script and discards what is
// written, for fuzzing the go-ios path without sockets.
type scriptConn struct{ r io.Reader }

func (c *scriptConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.UnixAddr{Net: "unix"} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Net: "unix"} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }
