package backupsvc

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/notification"
	"github.com/backupd/backupd/sim/fileset"
)

// TestPasscodePrompt: the device relays the LocalAuthentication
// notifications around its passcode prompt, ends the backup with 208 when
// nobody enters the passcode, and goes on when it is entered (after
// PasscodeDelay, or at once through PasscodeEntered).
func TestPasscodePrompt(t *testing.T) {
	tests := []struct {
		name     string
		faults   Faults
		enter    bool // close PasscodeEntered once the prompt shows
		wantCode int64
		minTime  time.Duration
	}{
		{"never entered", Faults{PasscodeNeverEntered: true, PasscodeDelay: 100 * time.Millisecond}, false, CodePasscodeNotEntered, 100 * time.Millisecond},
		{"entered after the delay", Faults{PasscodeDelay: 100 * time.Millisecond}, false, CodeOK, 100 * time.Millisecond},
		{"entered early", Faults{PasscodeNeverEntered: true, PasscodeDelay: time.Hour}, true, CodeOK, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, fileset.Spec{Seed: 13, Files: 3, MaxSize: 100})
			dev, hc := connPair(t)
			cfg := r.config(tt.faults)
			var mu sync.Mutex
			var relayed []string
			entered := make(chan struct{})
			cfg.RelayNotification = func(name string) {
				mu.Lock()
				relayed = append(relayed, name)
				mu.Unlock()
				if name == notification.PasscodePresented && tt.enter {
					close(entered)
				}
			}
			cfg.PasscodeEntered = func() <-chan struct{} { return entered }
			done := make(chan error, 1)
			go func() { done <- Serve(context.Background(), dev, cfg) }()
			start := time.Now()
			if err := r.host.run(hc, backupReq(true)); err != nil {
				t.Fatalf("host: %v", err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("device: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Serve did not return")
			}
			if c := r.host.finalCode(); c != tt.wantCode {
				t.Fatalf("ErrorCode %d, want %d", c, tt.wantCode)
			}
			if el := time.Since(start); el < tt.minTime {
				t.Fatalf("ended after %v, before the passcode delay %v", el, tt.minTime)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []string{notification.PasscodePresented, notification.PasscodeDismissed}; !slices.Equal(relayed, want) {
				t.Fatalf("relayed %v, want %v", relayed, want)
			}
		})
	}
}

// TestNoPasscodePromptByDefault: a healthy device relays nothing.
func TestNoPasscodePromptByDefault(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 14, Files: 3, MaxSize: 100})
	dev, hc := connPair(t)
	cfg := r.config(Faults{})
	var relayed []string
	cfg.RelayNotification = func(name string) { relayed = append(relayed, name) }
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), dev, cfg) }()
	if err := r.host.run(hc, backupReq(true)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(relayed) != 0 {
		t.Fatalf("relayed %v", relayed)
	}
}
