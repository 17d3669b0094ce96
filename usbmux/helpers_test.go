package usbmux

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim"
)

// testCtx is a context that ends with the test, with a bound so a hung
// exchange fails the test instead of the whole run.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// simClient returns a client of the simulator's usbmuxd.
func simClient(t testing.TB, s *sim.Sim) *Client {
	t.Helper()
	addr, err := ParseAddr(s.Address())
	if err != nil {
		t.Fatal(err)
	}
	return NewClient(Config{Addr: addr, Timeout: 5 * time.Second})
}

// simDevice returns the usbmux Device for a plugged simulated device.
func simDevice(t testing.TB, c *Client, d *sim.Device) Device {
	t.Helper()
	list, err := c.ListDevices(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range list {
		if dev.UDID == d.UDID() {
			return dev
		}
	}
	t.Fatalf("device %s not listed by usbmuxd", d.UDID())
	return Device{}
}

// shortSocketPath returns a unix socket path short enough for sun_path.
func shortSocketPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "umx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "mux.sock")
}

// fakeMux is a scripted usbmuxd: serve runs on every accepted connection.
type fakeMux struct {
	addr  Addr
	ln    net.Listener
	conns atomic.Int32
}

func startFakeMux(t testing.TB, serve func(n int, c net.Conn)) *fakeMux {
	t.Helper()
	path := shortSocketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMux{addr: Addr{Network: "unix", Address: path}, ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(f.conns.Add(1))
			go func() {
				defer c.Close()
				serve(n, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return f
}

// readReq reads one usbmux request from a client and returns its tag and
// message type.
func readReq(c net.Conn) (uint32, string, error) {
	h, body, err := wire.ReadMuxPacket(c, wire.MaxMuxPayload)
	if err != nil {
		return 0, "", err
	}
	var m struct{ MessageType string }
	if err := wire.Decode(body, &m); err != nil {
		return 0, "", err
	}
	return h.Tag, m.MessageType, nil
}

func sendMux(c net.Conn, tag uint32, msg any) error {
	b, err := wire.Encode(msg, wire.XML)
	if err != nil {
		return err
	}
	return wire.WriteMuxPacket(c, wire.MuxVersionPlist, wire.MuxMessagePlist, tag, b)
}

func attachedMsg(id int, udid, conn string, speed uint64) map[string]any {
	return map[string]any{"MessageType": "Attached", "DeviceID": id, "Properties": map[string]any{
		"ConnectionSpeed": speed, "ConnectionType": conn, "DeviceID": id, "SerialNumber": udid,
	}}
}

func wantCause(t testing.TB, err error, want cause.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want cause %s", want)
	}
	if got := cause.Of(err); got != want {
		t.Fatalf("cause %s, want %s; error: %v", got, want, err)
	}
}
