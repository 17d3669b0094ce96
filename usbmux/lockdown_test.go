package usbmux

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// simLockdown connects to lockdownd on a simulated device and returns the
// client with the device's pair record (nil when it has none).
func simLockdown(t *testing.T, s *sim.Sim, d *sim.Device) (*Client, *Lockdown, *PairRecord) {
	t.Helper()
	c := simClient(t, s)
	dev := simDevice(t, c, d)
	l, err := c.DialLockdown(testCtx(t), dev)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	rec, err := c.ReadPairRecord(testCtx(t), d.UDID())
	if err != nil && !errors.Is(err, ErrNoPairRecord) {
		t.Fatal(err)
	}
	return c, l, rec
}

func TestLockdownWithoutSession(t *testing.T) {
	s, devs := simtest.StartT(t, sim.DeviceConfig{Name: "Ada's iPhone"})
	_, l, _ := simLockdown(t, s, devs[0])
	ctx := testCtx(t)

	typ, err := l.QueryType(ctx)
	if err != nil || typ != "com.apple.mobile.lockdown" {
		t.Fatalf("QueryType = %q, %v", typ, err)
	}
	v, err := l.GetValue(ctx, "", "DeviceName")
	if err != nil || v != "Ada's iPhone" {
		t.Fatalf("DeviceName = %v, %v", v, err)
	}
	tests := []struct {
		domain, key string
		sentinel    error
	}{
		{"", "NoSuchKey", ErrMissingValue},
		{"", "PhoneNumber", ErrGetProhibited}, // private without a session
		{lockdown.DomainBattery, "", ErrGetProhibited},
	}
	for _, tt := range tests {
		_, err := l.GetValue(ctx, tt.domain, tt.key)
		var le *LockdownError
		if !errors.Is(err, tt.sentinel) || !errors.As(err, &le) || le.Request != "GetValue" {
			t.Errorf("GetValue %s %s: %v, want %v", tt.domain, tt.key, err, tt.sentinel)
		}
	}
	// A refusal leaves the connection usable.
	if _, err := l.QueryType(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartService(ctx, lockdown.ServiceMobileBackup2, nil); !errors.Is(err, ErrSessionInactive) {
		t.Fatalf("StartService without a session: %v", err)
	}
}

func TestLockdownSession(t *testing.T) {
	s, devs := simtest.StartT(t, sim.DeviceConfig{BatteryLevel: 42})
	_, l, rec := simLockdown(t, s, devs[0])
	ctx := testCtx(t)

	for round := 0; round < 2; round++ {
		id, err := l.StartSession(ctx, rec)
		if err != nil || id == "" || l.SessionID() != id {
			t.Fatalf("round %d: StartSession = %q, %v", round, id, err)
		}
		v, err := l.GetValue(ctx, lockdown.DomainBattery, "BatteryCurrentCapacity")
		if n, _ := wire.Uint(v); err != nil || n != 42 {
			t.Fatalf("battery in session = %v, %v", v, err)
		}
		if _, err := l.StartService(ctx, lockdown.ServiceMobileBackup2, nil); !errors.Is(err, ErrEscrowLocked) {
			t.Fatalf("mobilebackup2 without escrow: %v", err)
		} else {
			wantCause(t, err, cause.DeviceLocked)
		}
		svc, err := l.StartService(ctx, lockdown.ServiceMobileBackup2, rec.EscrowBag)
		if err != nil || svc.Port == 0 || svc.Name != lockdown.ServiceMobileBackup2 {
			t.Fatalf("mobilebackup2 with escrow: %+v, %v", svc, err)
		}
		if _, err := l.StartService(ctx, "com.example.nothing", nil); !errors.Is(err, ErrInvalidService) {
			t.Fatalf("unknown service: %v", err)
		}
		if err := l.StopSession(ctx); err != nil {
			t.Fatalf("round %d: StopSession: %v", round, err)
		}
		// Plain text again: the simulator reads this request without TLS.
		if typ, err := l.QueryType(ctx); err != nil || typ == "" {
			t.Fatalf("round %d: QueryType after StopSession: %q, %v", round, typ, err)
		}
		if _, err := l.GetValue(ctx, lockdown.DomainBattery, ""); !errors.Is(err, ErrGetProhibited) {
			t.Fatalf("round %d: session still active after StopSession: %v", round, err)
		}
	}
	if n := devs[0].Sessions(); n != 2 {
		t.Fatalf("device counted %d sessions, want 2", n)
	}
}

func TestStartSessionRefusals(t *testing.T) {
	s, devs := simtest.StartT(t,
		sim.DeviceConfig{Pairing: sim.Locked},
		sim.DeviceConfig{Pairing: sim.Forgotten},
	)
	tests := []struct {
		dev      *sim.Device
		sentinel error
		want     cause.Code
	}{
		{devs[0], ErrPasswordProtected, cause.DeviceLocked},
		{devs[1], ErrInvalidHostID, cause.PairingInvalid},
	}
	for _, tt := range tests {
		_, l, rec := simLockdown(t, s, tt.dev)
		_, err := l.StartSession(testCtx(t), rec)
		if !errors.Is(err, tt.sentinel) {
			t.Fatalf("%s: %v, want %v", tt.dev.Config().Pairing, err, tt.sentinel)
		}
		wantCause(t, err, tt.want)
		if l.SessionID() != "" {
			t.Fatal("session id set after a refusal")
		}
	}
}

func TestValidatePair(t *testing.T) {
	s, devs := simtest.StartT(t, sim.DeviceConfig{}, sim.DeviceConfig{Pairing: sim.Forgotten})
	_, l, rec := simLockdown(t, s, devs[0])
	if err := l.ValidatePair(testCtx(t), rec); err != nil {
		t.Fatal(err)
	}
	_, l, rec = simLockdown(t, s, devs[1])
	if err := l.ValidatePair(testCtx(t), rec); !errors.Is(err, ErrInvalidHostID) {
		t.Fatalf("forgotten: %v", err)
	}
}

// TestSessionPinsDeviceCertificate gives StartSession a record whose
// DeviceCertificate is another device's: the TLS session must fail as
// pairing_invalid and the connection must not be used again.
func TestSessionPinsDeviceCertificate(t *testing.T) {
	s, devs := simtest.StartT(t, sim.DeviceConfig{}, sim.DeviceConfig{})
	_, _, other := simLockdown(t, s, devs[1])
	_, l, rec := simLockdown(t, s, devs[0])
	forged := *rec
	forged.DeviceCertificate = other.DeviceCertificate
	_, err := l.StartSession(testCtx(t), &forged)
	if !errors.Is(err, errCertMismatch) {
		t.Fatalf("StartSession with the wrong pinned certificate: %v", err)
	}
	wantCause(t, err, cause.PairingInvalid)
	if _, err := l.QueryType(testCtx(t)); err == nil {
		t.Fatal("connection still used after a failed handshake")
	}
}

// hungDevice returns one end of a connection whose other end reads
// requests and never answers.
func hungDevice(t *testing.T) net.Conn {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a
}

func TestLockdownDeadlinesAndCancel(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		l := NewLockdown(hungDevice(t), "", time.Second)
		start := time.Now()
		_, err := l.GetValue(context.Background(), "", "DeviceName")
		if time.Since(start) > 5*time.Second {
			t.Fatalf("took %v", time.Since(start))
		}
		wantCause(t, err, cause.Disconnected)
		// The stream is out of step now: later calls fail at once, not
		// after another 1 s timeout.
		start = time.Now()
		if _, err := l.QueryType(context.Background()); err == nil || time.Since(start) > 500*time.Millisecond {
			t.Fatalf("call after a timeout: %v after %v", err, time.Since(start))
		}
	})
	t.Run("context deadline", func(t *testing.T) {
		l := NewLockdown(hungDevice(t), "", time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := l.QueryType(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		l := NewLockdown(hungDevice(t), "", time.Minute)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := l.QueryType(ctx)
		if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
			t.Fatalf("after %v: %v", time.Since(start), err)
		}
	})
}

// scriptedDevice answers each lockdown request with the next reply.
func scriptedDevice(t *testing.T, replies ...[]byte) net.Conn {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		defer b.Close()
		for _, r := range replies {
			if _, err := wire.ReadFrame(b, 1<<20); err != nil {
				return
			}
			if err := wire.WriteFrame(b, r); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { a.Close() })
	return a
}

func TestLockdownBadReplies(t *testing.T) {
	p := func(inner string) []byte { return []byte("<plist><dict>" + inner + "</dict></plist>") }
	tests := []struct {
		name   string
		reply  []byte
		want   cause.Code
		usable bool // the connection still works afterwards
	}{
		{"not a plist", []byte("garbage"), cause.ProtocolError, true},
		{"array", []byte("<plist><array/></plist>"), cause.ProtocolError, true},
		{"no Request echo", p("<key>Type</key><string>x</string>"), cause.ProtocolError, true},
		{"reply to another request", p("<key>Request</key><string>GetValue</string><key>Type</key><string>x</string>"), cause.ProtocolError, false},
		{"Error not a string", p("<key>Request</key><string>QueryType</string><key>Error</key><integer>3</integer>"), cause.ProtocolError, true},
		{"unknown Error", p("<key>Request</key><string>QueryType</string><key>Error</key><string>Sunspots</string>"), cause.ProtocolError, true},
		{"Result Failure", p("<key>Request</key><string>QueryType</string><key>Result</key><string>Failure</string>"), cause.ProtocolError, true},
		{"no Type", p("<key>Request</key><string>QueryType</string>"), cause.ProtocolError, true},
	}
	ok := p("<key>Request</key><string>QueryType</string><key>Type</key><string>com.apple.mobile.lockdown</string>")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLockdown(scriptedDevice(t, tt.reply, ok), "", time.Second)
			_, err := l.QueryType(testCtx(t))
			wantCause(t, err, tt.want)
			_, err = l.QueryType(testCtx(t))
			if (err == nil) != tt.usable {
				t.Fatalf("next call: %v, want usable=%v", err, tt.usable)
			}
		})
	}
}

func TestDecodeService(t *testing.T) {
	tests := []struct {
		reply map[string]any
		want  Service
		ok    bool
	}{
		{map[string]any{"Port": uint64(49152)}, Service{Name: "s", Port: 49152}, true},
		{map[string]any{"Port": uint64(1), "EnableServiceSSL": true}, Service{Name: "s", Port: 1, SSL: true}, true},
		{map[string]any{"Port": uint64(0)}, Service{}, false},
		{map[string]any{"Port": uint64(65536)}, Service{}, false},
		{map[string]any{"Port": int64(-1)}, Service{}, false},
		{map[string]any{"Port": "80"}, Service{}, false},
		{map[string]any{}, Service{}, false},
	}
	for _, tt := range tests {
		got, err := decodeService("s", tt.reply)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("decodeService(%v) = %+v, %v", tt.reply, got, err)
		}
	}
}

// fakeLockdownd plays a device that runs one session over TLS with the
// certificate in rec, and records how the host left TLS.
type fakeLockdownd struct {
	rec          *PairRecord
	sendNotify   bool       // answer the host's close_notify with ours
	hostNotified chan error // nil: the host sent close_notify
}

func newFakeLockdownd(t *testing.T, sendNotify bool) (*fakeLockdownd, *PairRecord, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := newPairRecord(&key.PublicKey, "BUID", "")
	if err != nil {
		t.Fatal(err)
	}
	return &fakeLockdownd{rec: rec, sendNotify: sendNotify, hostNotified: make(chan error, 1)}, rec, key
}

func (f *fakeLockdownd) serve(t *testing.T, conn net.Conn, key *rsa.PrivateKey) {
	reply := func(w io.Writer, req string, kv ...any) error {
		m := map[string]any{"Request": req}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return wire.WritePlist(w, m, wire.XML)
	}
	var req map[string]any
	if err := wire.ReadPlist(conn, 1<<20, &req); err != nil || req["Request"] != "StartSession" {
		f.hostNotified <- fmt.Errorf("want StartSession, got %v %v", req, err)
		return
	}
	if err := reply(conn, "StartSession", "SessionID", "S1", "EnableSessionSSL", true); err != nil {
		return
	}
	cert, err := tls.X509KeyPair(f.rec.DeviceCertificate, pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)))
	if err != nil {
		f.hostNotified <- err
		return
	}
	ts := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert})
	req = nil
	if err := wire.ReadPlist(ts, 1<<20, &req); err != nil || req["Request"] != "StopSession" || req["SessionID"] != "S1" {
		f.hostNotified <- fmt.Errorf("want StopSession S1 in TLS, got %v %v", req, err)
		return
	}
	if len(ts.ConnectionState().PeerCertificates) == 0 {
		f.hostNotified <- errors.New("host presented no certificate")
		return
	}
	if err := reply(ts, "StopSession"); err != nil {
		return
	}
	// The host's close_notify makes Read return io.EOF; plain text
	// instead would be a record header error.
	if _, err := ts.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		f.hostNotified <- fmt.Errorf("host did not send close_notify: %v", err)
		return
	}
	if f.sendNotify {
		if err := ts.CloseWrite(); err != nil {
			f.hostNotified <- err
			return
		}
		// crypto/tls leaves a past write deadline after close_notify.
		_ = conn.SetWriteDeadline(time.Time{})
	}
	f.hostNotified <- nil
	req = nil
	if err := wire.ReadPlist(conn, 1<<20, &req); err != nil || req["Request"] != "QueryType" {
		return
	}
	_ = reply(conn, "QueryType", "Type", "com.apple.mobile.lockdown")
}

func TestStopSessionExchangesCloseNotify(t *testing.T) {
	t.Run("device answers", func(t *testing.T) {
		f, rec, key := newFakeLockdownd(t, true)
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go f.serve(t, b, key)
		l := NewLockdown(a, "", 5*time.Second)
		if _, err := l.StartSession(testCtx(t), rec); err != nil {
			t.Fatal(err)
		}
		if err := l.StopSession(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if err := <-f.hostNotified; err != nil {
			t.Fatal(err)
		}
		if typ, err := l.QueryType(testCtx(t)); err != nil || typ != "com.apple.mobile.lockdown" {
			t.Fatalf("plain QueryType after StopSession: %q, %v", typ, err)
		}
	})
	t.Run("device stays silent", func(t *testing.T) {
		f, rec, key := newFakeLockdownd(t, false)
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go f.serve(t, b, key)
		l := NewLockdown(a, "", 300*time.Millisecond)
		if _, err := l.StartSession(testCtx(t), rec); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := l.StopSession(testCtx(t))
		if err == nil || time.Since(start) > 3*time.Second {
			t.Fatalf("StopSession without the device's close_notify: %v after %v", err, time.Since(start))
		}
		if _, err := l.QueryType(testCtx(t)); err == nil {
			t.Fatal("connection used after TLS ended badly")
		}
	})
}

func TestLockdownCloseCutsACallShort(t *testing.T) {
	l := NewLockdown(hungDevice(t), "", time.Minute)
	errc := make(chan error, 1)
	go func() {
		_, err := l.QueryType(context.Background())
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	l.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("call on a closed connection succeeded")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not cut the call short")
	}
	if time.Since(start) > time.Second {
		t.Fatalf("Close took %v", time.Since(start))
	}
}
