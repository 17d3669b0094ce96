package syncsvc

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/wire"
)

// serve runs a Serve function on one end of a pipe and returns the other
// end and a channel with what Serve returned.
func serve(t *testing.T, ctx context.Context, fn func(context.Context, net.Conn) error) (net.Conn, <-chan error) {
	t.Helper()
	host, dev := net.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- fn(ctx, dev) }()
	t.Cleanup(func() { host.Close() })
	return host, errc
}

// served waits for Serve to return.
func served(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

func send(t *testing.T, c net.Conn, v any, f wire.Format) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := wire.WritePlist(c, v, f); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func recvAny(t *testing.T, c net.Conn) any {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var v any
	if err := wire.ReadPlist(c, wire.MaxFrame, &v); err != nil {
		t.Fatalf("recv: %v", err)
	}
	return v
}

func recv(t *testing.T, c net.Conn) map[string]any {
	t.Helper()
	m, ok := recvAny(t, c).(map[string]any)
	if !ok {
		t.Fatal("reply is not a dictionary")
	}
	return m
}

// silent asserts that nothing arrives on c for a short while.
func silent(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var b [1]byte
	if n, err := c.Read(b[:]); n > 0 || err == nil {
		t.Fatal("unexpected data from the device")
	}
	_ = c.SetReadDeadline(time.Time{})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
