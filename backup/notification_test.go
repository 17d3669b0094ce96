package backup

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/notification"
	"github.com/backupd/backupd/sim/syncsvc"
)

// TestNotificationClient runs the client against the simulator's
// notification_proxy: posts arrive in order, observed notifications are
// relayed back, and Close waits for ProxyDeath.
func TestNotificationClient(t *testing.T) {
	host, dev := net.Pipe()
	log := syncsvc.NewNotificationCenter()
	served := make(chan error, 1)
	go func() {
		served <- syncsvc.ServeNotificationProxy(context.Background(), dev, syncsvc.NotificationConfig{Center: log})
	}()

	relayed := make(chan string, 4)
	n := newNotificationClient(host, 5*time.Second, func(name string) { relayed <- name })
	ctx := testCtx(t)
	if err := n.Observe(ctx, notification.SyncCancelRequest, notification.SyncSuspendRequest); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{notification.SyncWillStart, notification.SyncLockRequest, notification.SyncDidStart} {
		if err := n.Post(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.WaitObserved(ctx, notification.SyncCancelRequest); err != nil {
		t.Fatal(err)
	}
	if got := log.Relay(notification.SyncCancelRequest); got != 1 {
		t.Fatalf("relayed to %d connections", got)
	}
	select {
	case name := <-relayed:
		if name != notification.SyncCancelRequest {
			t.Fatalf("relayed %q", name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the cancel request was not relayed")
	}
	if err := log.WaitPosted(ctx, notification.SyncDidStart); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("the device side ended with %v", err)
	}
	want := []string{notification.SyncWillStart, notification.SyncLockRequest, notification.SyncDidStart}
	if got := log.Posted(); !slices.Equal(got, want) {
		t.Errorf("posted %v, want %v", got, want)
	}
}

// TestNotificationClientNoProxyDeath: a device that never answers Shutdown
// costs at most the timeout.
func TestNotificationClientNoProxyDeath(t *testing.T) {
	host, dev := net.Pipe()
	defer dev.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := dev.Read(buf); err != nil {
				return
			}
		}
	}()
	n := newNotificationClient(host, 200*time.Millisecond, nil)
	start := time.Now()
	if err := n.Close(testCtx(t)); err == nil {
		t.Error("Close without ProxyDeath reported success")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
}
