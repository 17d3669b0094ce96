package usbmux

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"maps"
	"reflect"
	"testing"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/wire"
)

// Every decoder in this package has a fuzz target. Each checks, beyond
// "no panic", that what it accepts is what the callers rely on.

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"", "UNIX:/var/run/usbmuxd", "unix:///tmp/x", "tcp://127.0.0.1:27015",
		"/var/run/usbmuxd", "127.0.0.1:27015", "[::1]:1", "UNIX:", "tcp://:1", "x://y", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err != nil {
			return
		}
		if (a.Network != "unix" && a.Network != "tcp") || a.Address == "" {
			t.Fatalf("ParseAddr(%q) = %+v", s, a)
		}
		// What String prints, ParseAddr reads back: logs can be pasted
		// into USBMUXD_SOCKET_ADDRESS.
		b, err := ParseAddr(a.String())
		if err != nil || b != a {
			t.Fatalf("ParseAddr(%q) = %+v; its String %q reads as %+v, %v", s, a, a.String(), b, err)
		}
	})
}

// FuzzMuxStream feeds a stream of usbmux packets to the code that reads
// replies and notifications: decodeMuxPacket, decodeDeviceList and the
// watcher's device map.
func FuzzMuxStream(f *testing.F) {
	pkt := func(tag uint32, msg any) []byte {
		b, err := wire.Encode(msg, wire.XML)
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		_ = wire.WriteMuxPacket(&buf, wire.MuxVersionPlist, wire.MuxMessagePlist, tag, b)
		return buf.Bytes()
	}
	att := attachedMsg(1, "00008030-001A2C3E0E62802E", "USB", 480000000)
	f.Add(pkt(0, att))
	f.Add(append(pkt(0, att), pkt(0, map[string]any{"MessageType": "Detached", "DeviceID": 1})...))
	f.Add(pkt(1, map[string]any{"DeviceList": []any{att, attachedMsg(2, "abc", "Network", 0)}}))
	f.Add(pkt(1, map[string]any{"MessageType": "Result", "Number": 2}))
	f.Add(pkt(0, map[string]any{"MessageType": "Paired", "DeviceID": 1}))
	f.Add([]byte{16, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		devices := map[uint32]Device{}
		for {
			h, body, err := wire.ReadMuxPacket(r, wire.MaxMuxPayload)
			if err != nil {
				return
			}
			msg, err := decodeMuxPacket(h, body)
			if err != nil {
				if cause.Of(err) != cause.ProtocolError {
					t.Fatalf("decode error without protocol_error: %v", err)
				}
				continue
			}
			if list, odd, err := decodeDeviceList(msg); err == nil {
				for _, e := range odd {
					checkOdd(t, e)
				}
				seen := map[uint32]bool{}
				for _, d := range list {
					checkDevice(t, d)
					if seen[d.DeviceID] {
						t.Fatalf("DeviceID %d twice in %+v", d.DeviceID, list)
					}
					seen[d.DeviceID] = true
				}
				reconcileDevices(devices, list)
				checkDeviceMap(t, devices)
			}
			applyAndCheck(t, devices, msg)
		}
	})
}

// applyAndCheck applies one notification to devices and checks that the
// map stays sound and the events describe the change.
func applyAndCheck(t *testing.T, devices map[uint32]Device, msg muxMessage) {
	t.Helper()
	before := maps.Clone(devices)
	evs, err := applyNotification(devices, msg)
	var odd *OddEntry
	if errors.As(err, &odd) {
		checkOdd(t, odd)
		if !maps.Equal(before, devices) {
			t.Fatalf("an odd entry changed the map: %+v, was %+v", devices, before)
		}
	}
	if err != nil {
		if cause.Of(err) != cause.ProtocolError {
			t.Fatalf("notification error without protocol_error: %v", err)
		}
		return
	}
	checkDeviceMap(t, devices)
	delta := 0
	for _, ev := range evs {
		checkDevice(t, ev.Device)
		switch ev.Kind {
		case Attached:
			delta++
			if devices[ev.Device.DeviceID] != ev.Device {
				t.Fatalf("attached %+v not in the map", ev.Device)
			}
		case Detached:
			delta--
		case Paired:
			if devices[ev.Device.DeviceID] != ev.Device {
				t.Fatalf("paired %+v not in the map", ev.Device)
			}
		default:
			t.Fatalf("notification made a %v event", ev.Kind)
		}
	}
	if len(devices) != len(before)+delta {
		t.Fatalf("map went from %d to %d devices with events %+v", len(before), len(devices), evs)
	}
}

// FuzzGoIOSListen feeds a stream to the watcher's go-ios path: the Listen
// reply, then notifications read by go-ios's receive func behind the
// guard, mapped to ours and applied. Beyond no panic (go-ios's included:
// goiosCall would hide one, so the target fails on it) and sound device
// maps, go-ios must read every packet the guard let through as our
// decoder did.
func FuzzGoIOSListen(f *testing.F) {
	pkt := func(tag uint32, msg any) []byte {
		b, err := wire.Encode(msg, wire.XML)
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		_ = wire.WriteMuxPacket(&buf, wire.MuxVersionPlist, wire.MuxMessagePlist, tag, b)
		return buf.Bytes()
	}
	ok := pkt(1, map[string]any{"MessageType": "Result", "Number": 0})
	att := attachedMsg(1, "00008030-001A2C3E0E62802E", "USB", 480000000)
	cat := func(ps ...[]byte) []byte { return bytes.Join(ps, nil) }
	f.Add(cat(ok, pkt(0, att)))
	f.Add(cat(ok, pkt(0, att), pkt(0, map[string]any{"MessageType": "Detached", "DeviceID": 1})))
	f.Add(cat(ok, pkt(0, att), pkt(0, map[string]any{"MessageType": "Paired", "DeviceID": 1})))
	f.Add(cat(ok, pkt(0, attachedMsg(2, "abc", "Network", 0)), pkt(0, attachedMsg(2, "def", "USB", 5))))
	f.Add(cat(ok, pkt(0, map[string]any{"MessageType": "Attached", "DeviceID": -3, "Properties": map[string]any{"LocationID": 1.5}})))
	bin, _ := wire.Encode(att, wire.Binary)
	var binPkt bytes.Buffer
	_ = wire.WriteMuxPacket(&binPkt, wire.MuxVersionPlist, wire.MuxMessagePlist, 0, bin)
	f.Add(cat(ok, binPkt.Bytes()))
	f.Add(pkt(1, map[string]any{"MessageType": "Result", "Number": 3}))
	f.Fuzz(func(t *testing.T, data []byte) {
		x := newGoIOSMux(&muxConn{c: NewClient(Config{}), conn: &scriptConn{r: bytes.NewReader(data)}})
		ctx := context.Background()
		allowed := func(err error) {
			t.Helper()
			if errors.Is(err, errGoIOSPanic) {
				t.Fatalf("go-ios panicked on a packet the guard let through: %v", err)
			}
			if c := cause.Of(err); c != cause.ProtocolError && c != cause.UsbmuxdUnavailable {
				t.Fatalf("error with cause %s: %v", c, err)
			}
		}
		if err := x.listen(ctx); err != nil {
			allowed(err)
			return
		}
		devices := map[uint32]Device{}
		for {
			msg, err := x.notification(ctx)
			if err != nil {
				var re *MuxResultError
				if errors.As(err, &re) {
					t.Fatalf("a notification read as a Result: %v", err)
				}
				allowed(err)
				return
			}
			if ours := notificationFields(x.guard.msg); !reflect.DeepEqual(ours, notificationFields(msg)) {
				t.Fatalf("go-ios read %+v, our decoder %+v", notificationFields(msg), ours)
			}
			applyAndCheck(t, devices, msg)
		}
	})
}

// notificationFields is what a notification says, with no Properties and
// empty ones alike.
func notificationFields(m muxMessage) muxMessage {
	out := muxMessage{MessageType: m.MessageType, DeviceID: m.DeviceID}
	if m.Properties != nil && *m.Properties != (muxProperties{}) {
		p := *m.Properties
		out.Properties = &p
	}
	return out
}

func checkDevice(t *testing.T, d Device) {
	t.Helper()
	if d.DeviceID == 0 || checkUDID(d.UDID) != nil || (d.ConnType != ConnUSB && d.ConnType != ConnNetwork) {
		t.Fatalf("accepted device %+v", d)
	}
}

// checkOdd checks that a skipped entry is one the watcher could not have
// used: a serial that is not a UDID or an unknown connection type.
func checkOdd(t *testing.T, e *OddEntry) {
	t.Helper()
	if checkUDID(e.Serial) == nil && (e.ConnType == ConnUSB || e.ConnType == ConnNetwork) {
		t.Fatalf("skipped a usable entry %+v", e)
	}
	if cause.Of(e) != cause.ProtocolError {
		t.Fatalf("odd entry with cause %s", cause.Of(e))
	}
}

func checkDeviceMap(t *testing.T, m map[uint32]Device) {
	t.Helper()
	for id, d := range m {
		if id != d.DeviceID {
			t.Fatalf("map key %d holds %+v", id, d)
		}
		checkDevice(t, d)
	}
}

func FuzzLockdownReply(f *testing.F) {
	f.Add("QueryType", []byte("<plist><dict><key>Request</key><string>QueryType</string><key>Type</key><string>com.apple.mobile.lockdown</string></dict></plist>"))
	f.Add("GetValue", []byte("<plist><dict><key>Request</key><string>GetValue</string><key>Error</key><string>MissingValue</string></dict></plist>"))
	f.Add("StartSession", []byte("<plist><dict><key>Request</key><string>StartSession</string><key>SessionID</key><string>X</string><key>EnableSessionSSL</key><true/></dict></plist>"))
	f.Add("Pair", []byte("<plist><dict><key>Error</key><string>PasswordProtected</string></dict></plist>"))
	bin, _ := wire.Encode(map[string]any{"Request": "GetValue", "Value": map[string]any{"a": uint64(1)}}, wire.Binary)
	f.Add("GetValue", bin)
	f.Fuzz(func(t *testing.T, request string, data []byte) {
		reply, err := decodeLockdownReply(request, data)
		if err != nil {
			var le *LockdownError
			if errors.As(err, &le) {
				if le.Code == "" || le.Request != request {
					t.Fatalf("LockdownError %+v", le)
				}
				if lockdownSentinel(le.Code) != nil && !errors.Is(err, lockdownSentinel(le.Code)) {
					t.Fatalf("%v does not match its sentinel", err)
				}
			} else if cause.Of(err) != cause.ProtocolError {
				t.Fatalf("error without protocol_error: %v", err)
			}
			return
		}
		if reply["Request"] != request {
			t.Fatalf("accepted a reply to %v for %q", reply["Request"], request)
		}
		if _, has := reply["Error"]; has {
			t.Fatal("accepted a reply with an Error")
		}
		// What callers do with a reply must not panic either.
		_, _ = decodeService(request, reply)
		var fa Facts
		_ = fa.setRoot(reply["Value"])
		_ = fa.setBattery(reply["Value"])
		_ = fa.setDisk(reply["Value"])
		_ = fa.setWillEncrypt(reply["Value"])
	})
}

// FuzzFacts decodes a plist as GetValue's Value and runs every Facts
// setter on it.
func FuzzFacts(f *testing.F) {
	seed := func(v any) {
		b, err := wire.Encode(v, wire.XML)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(map[string]any{"DeviceName": "x", "ProductType": "iPhone16,1", "ProductVersion": "18.0"})
	seed(map[string]any{"BatteryCurrentCapacity": uint64(50), "BatteryIsCharging": true})
	seed(map[string]any{"TotalDataCapacity": uint64(100), "TotalDataAvailable": uint64(40)})
	seed(map[string]any{"TotalDataCapacity": 1.5e10, "TotalDataAvailable": -3})
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if err := wire.Decode(data, &v); err != nil {
			return
		}
		for _, set := range []func(*Facts, any) error{(*Facts).setRoot, (*Facts).setWillEncrypt, (*Facts).setBattery, (*Facts).setDisk} {
			fa := Facts{BatteryLevel: -1}
			if err := set(&fa, v); err != nil {
				if cause.Of(err) != cause.ProtocolError {
					t.Fatalf("error without protocol_error: %v", err)
				}
				continue
			}
			if fa.BatteryLevel < -1 || fa.BatteryLevel > 100 || fa.DiskUsed > fa.DiskCapacity {
				t.Fatalf("accepted %+v from %#v", fa, v)
			}
		}
	})
}

func FuzzPairRecord(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	rec, err := newPairRecord(&key.PublicKey, "BUID", "aa:bb")
	if err != nil {
		f.Fatal(err)
	}
	rec.EscrowBag = []byte("escrow")
	good, err := rec.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	xml, _ := wire.Encode(rec, wire.XML)
	f.Add(xml)
	f.Add([]byte("<plist><dict><key>HostID</key><string>x</string></dict></plist>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodePairRecord(data)
		if err != nil {
			if cause.Of(err) != cause.PairingInvalid {
				t.Fatalf("error without pairing_invalid: %v", err)
			}
			return
		}
		if _, err := r.pinnedTLSConfig(); err != nil {
			t.Fatalf("accepted a record that cannot start TLS: %v", err)
		}
		b, err := r.Marshal()
		if err != nil {
			t.Fatalf("accepted a record that does not marshal: %v", err)
		}
		back, err := DecodePairRecord(b)
		if err != nil || !reflect.DeepEqual(normalise(back), normalise(r)) {
			t.Fatalf("round trip: %+v, %v", back, err)
		}
	})
}

// normalise makes empty and nil byte slices compare equal, as the plist
// encoding does not keep the difference.
func normalise(r *PairRecord) PairRecord {
	c := *r
	for _, b := range []*[]byte{&c.DeviceCertificate, &c.HostCertificate, &c.HostPrivateKey, &c.RootCertificate, &c.RootPrivateKey, &c.EscrowBag} {
		if len(*b) == 0 {
			*b = nil
		}
	}
	return c
}

func FuzzDevicePublicKey(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)}))
	pkix, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}))
	f.Add([]byte("-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := parseDevicePublicKey(data)
		if err != nil {
			if cause.Of(err) != cause.ProtocolError {
				t.Fatalf("error without protocol_error: %v", err)
			}
			return
		}
		if n := k.N.BitLen(); n < 1024 || n > 8192 || k.E < 3 {
			t.Fatalf("accepted a %d-bit key with exponent %d", n, k.E)
		}
	})
}
