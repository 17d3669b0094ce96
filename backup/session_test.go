package backup

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/devicelink"
)

// fakeSession is a session with no staging over a pipe, and the device's
// end of the pipe.
func fakeSession(t *testing.T, opts Options) (*session, *devicelink.Conn, net.Conn) {
	t.Helper()
	host, dev := net.Pipe()
	t.Cleanup(func() { host.Close(); dev.Close() })
	return newSession(host, opts.withDefaults(), nil, "", nil), devicelink.NewConn(dev), dev
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name   string
		device func(d *devicelink.Conn)
		want   cause.Code
	}{
		{"version 400", func(d *devicelink.Conn) {
			d.DeviceVersionExchange(devicelink.Version400())
			d.ReadProcessMessage()
			d.SendProcessMessage(map[string]any{"MessageName": "Response", "ErrorCode": uint64(0), "ProtocolVersion": 2.1})
		}, cause.None},
		{"version 300", func(d *devicelink.Conn) {
			d.DeviceVersionExchange(devicelink.Version{Major: 300, Minor: 5})
			d.ReadProcessMessage()
			d.SendProcessMessage(map[string]any{"MessageName": "Response", "ErrorCode": uint64(0), "ProtocolVersion": 2.0})
		}, cause.None},
		{"version 500", func(d *devicelink.Conn) { d.DeviceVersionExchange(devicelink.Version{Major: 500}) }, cause.IOSUnsupported},
		{"no common protocol", func(d *devicelink.Conn) {
			d.DeviceVersionExchange(devicelink.Version400())
			d.ReadProcessMessage()
			d.SendProcessMessage(map[string]any{"MessageName": "Response", "ErrorCode": uint64(1)})
		}, cause.IOSUnsupported},
		{"garbage", func(d *devicelink.Conn) { d.Writer().Write([]byte{0, 0, 0, 3, 'x', 'y', 'z'}) }, cause.ProtocolError},
		{"hang-up", func(d *devicelink.Conn) {}, cause.Disconnected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, dev, devConn := fakeSession(t, Options{StallTimeout: 2 * time.Second})
			go func() {
				tc.device(dev)
				if tc.want == cause.Disconnected {
					devConn.Close()
				}
			}()
			err := s.handshake()
			if got := cause.Of(err); err != nil && got != tc.want || err == nil && tc.want != cause.None {
				t.Fatalf("handshake: %v (cause %s), want %s", err, got, tc.want)
			}
		})
	}
}

// TestCancelledByDevice: the phone's syncCancelRequest ends a session
// blocked waiting for the device, with cause interrupted.
func TestCancelledByDevice(t *testing.T) {
	s, dev, _ := fakeSession(t, Options{StallTimeout: time.Minute, FirstMessageTimeout: time.Minute})
	ctx, cancel := context.WithCancelCause(context.Background())
	defer s.watch(ctx)()
	go func() {
		dev.ReadProcessMessage() // the request; then the device says nothing
		cancel(ErrCancelledByDevice)
	}()
	start := time.Now()
	_, err := s.request(map[string]any{"MessageName": "Backup"})
	if !errors.Is(err, ErrCancelledByDevice) || cause.Of(err) != cause.Interrupted {
		t.Fatalf("request: %v, want interrupted by the device", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to notice", d)
	}
}

// TestRequestEnds covers how an exchange can end after the request.
func TestRequestEnds(t *testing.T) {
	tests := []struct {
		name   string
		device func(d *devicelink.Conn)
		want   cause.Code
		final  *deviceResult
	}{
		{"final response", func(d *devicelink.Conn) {
			d.SendProcessMessage(map[string]any{"MessageName": "Response", "ErrorCode": uint64(105), "ErrorDescription": "space"})
		}, cause.None, &deviceResult{105, "space"}},
		{"disconnect without a result", func(d *devicelink.Conn) { d.Disconnect("") }, cause.Disconnected, nil},
		{"silence", func(d *devicelink.Conn) {}, cause.Stalled, nil},
		{"half a message", func(d *devicelink.Conn) { d.Writer().Write([]byte{0, 0, 3, 0, 'b', 'p', 'l'}) }, cause.ProtocolError, nil},
		{"oversized message", func(d *devicelink.Conn) { d.Writer().Write([]byte{0x7f, 0xff, 0xff, 0xff}) }, cause.ProtocolError, nil},
		{"not a DL message", func(d *devicelink.Conn) { d.WriteRaw([]any{"Hello"}) }, cause.ProtocolError, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, dev, _ := fakeSession(t, Options{StallTimeout: 300 * time.Millisecond, FirstMessageTimeout: 300 * time.Millisecond})
			go func() {
				if _, err := dev.ReadProcessMessage(); err != nil {
					return
				}
				tc.device(dev)
			}()
			final, err := s.request(map[string]any{"MessageName": "Backup"})
			if got := cause.Of(err); err != nil && got != tc.want || err == nil && tc.want != cause.None {
				t.Fatalf("request: %v (cause %s), want %s", err, got, tc.want)
			}
			if tc.final != nil && (final == nil || *final != *tc.final) {
				t.Errorf("final %+v, want %+v", final, tc.final)
			}
		})
	}
}
