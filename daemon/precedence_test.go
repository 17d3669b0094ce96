package daemon

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
	"github.com/backupd/backupd/usbmux"
)

// diskFullThenGone is a backup that hits a full disk and then sees the
// phone hang up: it blocks until its context ends (the detach, or the
// stall watchdog) and returns the write's ENOSPC wrapped in a disconnect,
// as the engine does.
type diskFullThenGone struct{ started chan struct{} }

func (b diskFullThenGone) Run(ctx context.Context, dev usbmux.Device, t backup.Target) (backup.Result, error) {
	close(b.started)
	<-ctx.Done()
	enospc := &os.PathError{Op: "write", Path: "/backups/x", Err: syscall.ENOSPC}
	return backup.Result{}, cause.New(cause.Disconnected, fmt.Errorf("upload: %w", enospc))
}

// TestDetachKeepsTheMoreSpecificCause: a run cut short by a detach or a
// stall is recorded with the most specific cause in its error (one
// classifier, cause.Classify), here the full disk, not the detach.
func TestDetachKeepsTheMoreSpecificCause(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 5}})
	dev := devs[0]
	b := diskFullThenGone{started: make(chan struct{})}
	r := start(t, testConfig(t, s), Options{Backuper: b})
	select {
	case <-b.started:
	case <-time.After(20 * time.Second):
		t.Fatal("no backup started")
	}
	dev.Unplug()
	runs := waitRuns(t, r.c, dev.UDID(), 1, 20*time.Second)
	if runs[0].Outcome != api.OutcomeFailed || runs[0].Cause != cause.HostDiskFull || runs[0].Errno != syscall.ENOSPC.Error() {
		t.Fatalf("run: %+v", runs[0])
	}
}
