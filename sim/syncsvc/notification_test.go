package syncsvc

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/notification"
	"github.com/backupd/backupd/proto/wire"
)

func serveNP(cfg NotificationConfig) func(context.Context, net.Conn) error {
	return func(ctx context.Context, c net.Conn) error { return ServeNotificationProxy(ctx, c, cfg) }
}

func TestNotificationPostThenShutdown(t *testing.T) {
	log := NewNotificationCenter()
	c, errc := serve(t, testCtx(t), serveNP(NotificationConfig{Center: log}))
	send(t, c, map[string]any{"Command": "PostNotification", "Name": notification.SyncWillStart}, wire.XML)
	send(t, c, map[string]any{"Command": "PostNotification", "Name": notification.SyncLockRequest}, wire.XML)
	// A post has no answer: libimobiledevice does not read one.
	silent(t, c)
	send(t, c, map[string]any{"Command": "Shutdown"}, wire.XML)
	if got := recv(t, c); got["Command"] != "ProxyDeath" {
		t.Fatalf("Shutdown answered %v, want ProxyDeath", got)
	}
	if err := served(t, errc); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	want := []string{notification.SyncWillStart, notification.SyncLockRequest}
	if got := log.Posted(); !slices.Equal(got, want) {
		t.Fatalf("Posted() = %v, want %v", got, want)
	}
}

func TestNotificationRelayReachesObservers(t *testing.T) {
	ctx := testCtx(t)
	log := NewNotificationCenter()
	// The device pushes a cancel as soon as the host says the sync began,
	// the way the core injects a cancel fault.
	cfg := NotificationConfig{Center: log, OnPost: func(name string) {
		if name == notification.SyncDidStart {
			log.Relay(notification.SyncCancelRequest)
		}
	}}
	observer, oerrc := serve(t, ctx, serveNP(cfg))
	for _, n := range []string{notification.SyncCancelRequest, notification.SyncSuspendRequest} {
		send(t, observer, map[string]any{"Command": "ObserveNotification", "Name": n}, wire.XML)
	}
	for _, n := range []string{notification.SyncCancelRequest, notification.SyncSuspendRequest} {
		if err := log.WaitObserved(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if got := log.Observed(); !slices.Equal(got, []string{notification.SyncCancelRequest, notification.SyncSuspendRequest}) {
		t.Fatalf("Observed() = %v", got)
	}
	if n := log.Relay("com.example.nobody-observes"); n != 0 {
		t.Fatalf("relay of an unobserved name reached %d connections", n)
	}

	poster, perrc := serve(t, ctx, serveNP(cfg))
	send(t, poster, map[string]any{"Command": "PostNotification", "Name": notification.SyncDidStart}, wire.XML)
	got := recv(t, observer)
	if got["Command"] != "RelayNotification" || got["Name"] != notification.SyncCancelRequest {
		t.Fatalf("observer got %v, want a relayed cancel", got)
	}
	silent(t, poster) // the poster observes nothing

	for _, c := range []net.Conn{poster, observer} {
		send(t, c, map[string]any{"Command": "Shutdown"}, wire.XML)
		if got := recv(t, c); got["Command"] != "ProxyDeath" {
			t.Fatalf("Shutdown answered %v", got)
		}
	}
	for _, errc := range []<-chan error{perrc, oerrc} {
		if err := served(t, errc); err != nil {
			t.Fatalf("Serve = %v", err)
		}
	}
	if got := log.Observed(); len(got) != 0 {
		t.Fatalf("closed connections still observe %v", got)
	}
	if n := log.Relay(notification.SyncCancelRequest); n != 0 {
		t.Fatalf("relay after close reached %d connections", n)
	}
}

func TestNotificationWaitPosted(t *testing.T) {
	ctx := testCtx(t)
	log := NewNotificationCenter()
	c, _ := serve(t, ctx, serveNP(NotificationConfig{Center: log}))
	done := make(chan error, 1)
	go func() { done <- log.WaitPosted(ctx, notification.SyncDidFinish) }()
	send(t, c, map[string]any{"Command": "PostNotification", "Name": notification.SyncDidFinish}, wire.XML)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := log.WaitPosted(short, "never"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitPosted of a name never posted = %v", err)
	}
}

func TestNotificationEnds(t *testing.T) {
	oversized := make([]byte, 4)
	binary.BigEndian.PutUint32(oversized, maxRequest+1)
	tests := []struct {
		name    string
		raw     []byte // sent as is
		req     any    // sent as a plist frame
		wantErr error  // nil: Serve returns nil
	}{
		{name: "hang up between requests"},
		{name: "no command", req: map[string]any{"Name": "x"}, wantErr: ErrMalformed},
		{name: "post without a name", req: map[string]any{"Command": "PostNotification"}, wantErr: ErrMalformed},
		{name: "name of the wrong type", req: map[string]any{"Command": "ObserveNotification", "Name": 3}, wantErr: ErrMalformed},
		{name: "array instead of a dictionary", req: []any{"Shutdown"}, wantErr: wire.ErrMalformed},
		{name: "not a plist", raw: []byte{0, 0, 0, 3, 'a', 'b', 'c'}, wantErr: wire.ErrMalformed},
		{name: "oversized frame", raw: oversized, wantErr: wire.ErrTooLarge},
		{name: "cut mid-frame", raw: []byte{0, 0, 0, 9, '<'}, wantErr: errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, errc := serve(t, testCtx(t), serveNP(NotificationConfig{}))
			if tc.req != nil {
				send(t, c, tc.req, wire.XML)
			}
			if tc.raw != nil {
				_, _ = c.Write(tc.raw)
			}
			c.Close()
			err := served(t, errc)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Serve = %v, want nil", err)
			case tc.wantErr == errAny && err == nil:
				t.Fatal("Serve = nil, want an error")
			case tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("Serve = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// errAny in a table means "some error".
var errAny = errors.New("any error")

func TestNotificationContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	_, errc := serve(t, ctx, serveNP(NotificationConfig{}))
	cancel()
	if err := served(t, errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v, want canceled", err)
	}
}
