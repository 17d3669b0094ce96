package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
	"github.com/backupd/backupd/usbmux"
)

// heldRestore is a Backuper whose restores wait until released before
// the real engine runs them.
type heldRestore struct {
	*countingBackuper
	eng     *backup.Engine
	entered chan struct{}
	release chan struct{}
}

func (h *heldRestore) Restore(ctx context.Context, dev usbmux.Device, t backup.RestoreTarget) (backup.RestoreResult, error) {
	close(h.entered)
	select {
	case <-h.release:
	case <-ctx.Done():
		return backup.RestoreResult{}, ctx.Err()
	}
	return h.eng.Restore(ctx, dev, t)
}

func isBusy(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Code == api.ErrBusy
}

// TestRestoreOwnsThePhone: the phone's actor runs the restore, so while
// it runs no backup of that phone starts, a second restore and a change
// of encryption are refused, and the safety backup it took first is
// marked as such; the restore run never becomes the last success.
func TestRestoreOwnsThePhone(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 30}})
	dev := devs[0]
	udid := dev.UDID()
	cfg := testConfig(t, s)
	eng := engineFor(t, s, cfg)
	held := &heldRestore{countingBackuper: &countingBackuper{next: eng}, eng: eng, entered: make(chan struct{}), release: make(chan struct{})}
	r := start(t, cfg, Options{Backuper: held})
	first := waitRuns(t, r.c, udid, 1, 30*time.Second)[0]
	waitState(t, r.c, udid, 10*time.Second, api.StateSucceeded)

	no := false
	if _, err := r.c.Restore(ctxT(t), udid, api.RestoreRequest{From: "1999-01-01"}); !isAPIError(err, api.ErrNotFound, 404) {
		t.Errorf("restore from before any backup: %v", err)
	}
	resp, err := r.c.Restore(ctxT(t), udid, api.RestoreRequest{NoReboot: true})
	if err != nil || !resp.SafetyBackup || resp.Version == "" {
		t.Fatalf("restore: %+v, %v", resp, err)
	}
	select {
	case <-held.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the restore never reached the engine")
	}
	if _, started := held.stats(); started != 2 {
		t.Errorf("%d backups ran before the restore, want the plug-in and the safety backup", started)
	}
	if _, err := r.c.BackupNow(ctxT(t), udid, api.BackupRequest{}); !isBusy(err) {
		t.Errorf("a backup during the restore: %v, want busy", err)
	}
	if _, err := r.c.Restore(ctxT(t), udid, api.RestoreRequest{SafetyBackup: &no}); !isBusy(err) {
		t.Errorf("a second restore during the restore: %v, want busy", err)
	}
	var ae *api.Error
	if _, err := r.d.setEncryption(ctxT(t), udid, true, "pw"); !errors.As(err, &ae) || ae.Code != api.ErrBusy {
		t.Errorf("an encryption change during the restore: %v, want busy", err)
	}
	close(held.release)

	var restored api.Run
	waitFor(t, 30*time.Second, "the restore's run", func() bool {
		runs := runsOf(t, r.c, udid)
		restored = runs[0]
		return restored.Kind == api.KindRestore && restored.Outcome != api.OutcomeRunning
	})
	if restored.Outcome != api.OutcomeSuccess || restored.Version != resp.Version || restored.Cause != cause.None {
		t.Fatalf("restore run %+v", restored)
	}
	if _, started := held.stats(); started != 2 {
		t.Errorf("%d backups ran, want 2", started)
	}
	d := waitState(t, r.c, udid, 10*time.Second, api.StateRestored)
	if d.LastAttempt == nil || d.LastAttempt.ID != restored.ID || !d.LastSuccess.Before(restored.Start) || !d.LastSuccess.After(first.End) {
		t.Errorf("device after the restore: last attempt %+v, last success %v (want the safety backup's)", d.LastAttempt, d.LastSuccess)
	}
	vs, err := r.c.Versions(ctxT(t), udid, "")
	if err != nil || len(vs.Versions) != 2 || !vs.Versions[0].Safety || vs.Versions[1].ID != resp.Version || vs.Versions[1].Safety {
		t.Errorf("versions: %+v, %v", vs, err)
	}
	if rep := dev.LastRestore(); rep.Intact != 30 || rep.Asked != 30 {
		t.Errorf("the phone got %d of %d files intact", rep.Intact, rep.Asked)
	}
}

// TestRestoreWithoutVersions: with keep_versions = 0, a safety backup
// would delete the phone's only backup, the one to restore: refused
// before anything runs; without the safety backup it goes ahead.
func TestRestoreWithoutVersions(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 10}})
	udid := devs[0].UDID()
	cfg := testConfig(t, s)
	cfg.Backup.KeepVersions = 0
	r := start(t, cfg, Options{})
	waitRuns(t, r.c, udid, 1, 30*time.Second)
	waitState(t, r.c, udid, 10*time.Second, api.StateSucceeded)
	if _, err := r.c.Restore(ctxT(t), udid, api.RestoreRequest{}); !isAPIError(err, api.ErrBadRequest, 400) {
		t.Fatalf("restore with a safety backup and no versions kept: %v, want bad_request", err)
	}
	if runs := runsOf(t, r.c, udid); len(runs) != 1 {
		t.Errorf("a refused restore ran something: %+v", runs)
	}
	no := false
	if _, err := r.c.Restore(ctxT(t), udid, api.RestoreRequest{SafetyBackup: &no, NoReboot: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the restore", func() bool {
		runs := runsOf(t, r.c, udid)
		return runs[0].Kind == api.KindRestore && runs[0].Outcome == api.OutcomeSuccess
	})
}
