package usbmux

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/wire"
)

// streamConn is a device whose every answer is already written: reads
// come from a fixed stream, writes go nowhere, and deadlines are moot
// because nothing blocks.
type streamConn struct {
	r *bytes.Reader
}

func (c streamConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c streamConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c streamConn) Close() error                     { return nil }
func (c streamConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "host", Net: "unix"} }
func (c streamConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "device", Net: "unix"} }
func (c streamConn) SetDeadline(time.Time) error      { return nil }
func (c streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c streamConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzLockdownStream plays a byte stream as everything a device's
// lockdownd says on one connection (4-byte big-endian length + plist per
// reply) and has the client ask its questions in the order a backup does.
// Nothing panics; every error names a cause a person can act on (never
// unknown); and once the stream has failed with a framing or
// out-of-step error, the connection refuses further requests instead of
// reading garbage as a reply.
func FuzzLockdownStream(f *testing.F) {
	frames := func(msgs ...map[string]any) []byte {
		var b bytes.Buffer
		for _, m := range msgs {
			if err := wire.WritePlist(&b, m, wire.XML); err != nil {
				f.Fatal(err)
			}
		}
		return b.Bytes()
	}
	f.Add(frames(
		map[string]any{"Request": "QueryType", "Type": "com.apple.mobile.lockdown"},
		map[string]any{"Request": "GetValue", "Value": map[string]any{"DeviceName": "x", "ProductVersion": "18.0"}},
		map[string]any{"Request": "StartService", "Port": uint64(49152), "Service": "com.apple.mobilebackup2"},
		map[string]any{"Request": "StopSession"},
	))
	f.Add(frames(map[string]any{"Request": "GetValue", "Value": "x"}))
	f.Add(frames(map[string]any{"Request": "QueryType", "Error": "InvalidHostID"}))
	f.Add(frames(map[string]any{"Request": "QueryType", "Type": "x"}, map[string]any{"Request": "GetValue", "Result": "Failure"}))
	f.Add([]byte{0, 0, 0, 9, '<', 'p', 'l', 'i', 's', 't', '/', '>', 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		l := NewLockdown(streamConn{bytes.NewReader(data)}, "fuzz", time.Second)
		ctx := context.Background()
		check := func(what string, err error) {
			t.Helper()
			if err == nil {
				return
			}
			if c := cause.Of(err); c == cause.Unknown || c == cause.None {
				t.Fatalf("%s: error without a cause: %v", what, err)
			}
		}
		// QueryType returns whatever Type the device names (even ""):
		// its caller compares it with lockdown's.
		_, err := l.QueryType(ctx)
		check("QueryType", err)
		_, err = l.GetValue(ctx, "", "")
		check("GetValue", err)
		_, err = l.GetValue(ctx, "com.apple.mobile.battery", "BatteryCurrentCapacity")
		check("GetValue battery", err)
		svc, err := l.StartService(ctx, "com.apple.mobilebackup2", []byte("escrow"))
		check("StartService", err)
		if err == nil && (svc.Port == 0 || svc.Name != "com.apple.mobilebackup2") {
			t.Fatalf("StartService accepted %+v", svc)
		}
		broken := l.broken
		if broken != nil {
			// The stream is out of step: nothing more may be read from it.
			left := l.raw.(streamConn).r.Len()
			_, err := l.GetValue(ctx, "", "")
			if err == nil || l.raw.(streamConn).r.Len() != left {
				t.Fatalf("after %v, a request read %d more bytes, err %v", broken, left-l.raw.(streamConn).r.Len(), err)
			}
			if !errors.Is(err, broken) {
				t.Fatalf("after %v, a request failed with %v", broken, err)
			}
		}
		check("StopSession", l.StopSession(ctx))
	})
}
