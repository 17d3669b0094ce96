package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
	"github.com/backupd/backupd/usbmux"
)

// heldPasswordChange is a Backuper whose password change blocks until
// released, as a phone does while it waits for its passcode.
type heldPasswordChange struct {
	*countingBackuper
	entered chan struct{}
	release chan struct{}
}

func (h *heldPasswordChange) SetPassword(ctx context.Context, _ usbmux.Device, _, _ string) error {
	close(h.entered)
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestPasswordChangeHoldsBackup: a backup that becomes due while the
// phone's backup password is being changed waits for the change to end
// instead of talking mobilebackup2 to the phone at the same time.
func TestPasswordChangeHoldsBackup(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20}})
	udid := devs[0].UDID()
	cfg := testConfig(t, s)
	eng := &heldPasswordChange{
		countingBackuper: &countingBackuper{next: engineFor(t, s, cfg)},
		entered:          make(chan struct{}),
		release:          make(chan struct{}),
	}
	r := start(t, cfg, Options{Backuper: eng})
	waitRuns(t, r.c, udid, 1, 30*time.Second)
	waitState(t, r.c, udid, 10*time.Second, api.StateSucceeded)

	changed := make(chan error, 1)
	go func() {
		resp, err := r.d.setEncryption(context.Background(), udid, true, "s3cret")
		if err == nil && !resp.OK {
			t.Errorf("password change: %+v", resp)
		}
		changed <- err
	}()
	select {
	case <-eng.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the password change never reached the engine")
	}
	if _, err := r.c.BackupNow(ctxT(t), udid, api.BackupRequest{}); err != nil {
		t.Fatalf("backup now: %v", err)
	}
	waitState(t, r.c, udid, 10*time.Second, api.StateQueued)
	time.Sleep(300 * time.Millisecond) // room for a wrong engine call to happen
	if _, started := eng.stats(); started != 1 {
		t.Fatalf("%d backups started during the password change, want only the first", started-1)
	}
	close(eng.release)
	if err := <-changed; err != nil {
		t.Fatalf("password change: %v", err)
	}
	waitRuns(t, r.c, udid, 2, 30*time.Second)
	if _, started := eng.stats(); started != 2 {
		t.Errorf("backups started: %d, want 2", started)
	}
}
