package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/notification"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim"
)

func TestFullBackup(t *testing.T) {
	const files = 300
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: files, MinSize: 1, MaxSize: 256 << 10}}, testOptions(t))
	var mu sync.Mutex
	var progress []Progress
	res := r.mustBackup(Target{Progress: func(p Progress) {
		mu.Lock()
		progress = append(progress, p)
		mu.Unlock()
	}})

	checkMatchesDevice(t, r.latest(), r.dev)
	st := r.dev.BackupStats()
	if !res.Full || res.Cause != cause.None || res.VersionPath != r.latest() {
		t.Errorf("result %+v", res)
	}
	// Files counts every file received: the data files, Manifest.db,
	// Manifest.plist and Status.plist.
	if res.Files != int64(st.FilesSent)+3 || res.Bytes < st.BytesSent {
		t.Errorf("result counts %d files, %d bytes; the device sent %d data files, %d bytes", res.Files, res.Bytes, st.FilesSent, st.BytesSent)
	}
	if st.FilesSent != files || !st.LastFull {
		t.Errorf("device stats %+v", st)
	}
	if r.stagingLeft() {
		t.Error("staging left behind")
	}

	// The notifications a host posts, in order, and the lock released.
	want := []string{notification.SyncWillStart, notification.SyncLockRequest, notification.SyncDidStart, notification.SyncDidFinish}
	if got := r.dev.Notifications(); !slices.Equal(got, want) {
		t.Errorf("notifications %v, want %v", got, want)
	}
	if r.dev.SyncLocked() {
		t.Error("the sync lock is still held")
	}

	// Progress rose to 100 and counted what arrived.
	mu.Lock()
	defer mu.Unlock()
	if len(progress) < 3 {
		t.Fatalf("%d progress reports", len(progress))
	}
	last := progress[len(progress)-1]
	if last.Percent != 100 || last.Files != res.Files || last.Bytes != res.Bytes {
		t.Errorf("last progress %+v, result %+v", last, res)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i].Bytes < progress[i-1].Bytes || progress[i].Files < progress[i-1].Files {
			t.Errorf("progress went backwards: %+v then %+v", progress[i-1], progress[i])
		}
	}

	// Info.plist carries the device's values.
	b, err := os.ReadFile(filepath.Join(r.latest(), "Info.plist"))
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	if err := wire.Decode(b, &info); err != nil {
		t.Fatal(err)
	}
	cfg := r.dev.Config()
	for k, v := range map[string]any{
		"Device Name": cfg.Name, "Product Type": cfg.ProductType, "Product Version": cfg.ProductVersion,
		"Serial Number": cfg.SerialNumber, "Target Identifier": r.dev.UDID(), "Target Type": "Device",
	} {
		if info[k] != v {
			t.Errorf("Info.plist %s = %v, want %v", k, info[k], v)
		}
	}
	if apps, _ := info["Applications"].(map[string]any); len(apps) == 0 {
		t.Errorf("Info.plist Applications %v", info["Applications"])
	}
}

func TestIncrementalBackup(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 400}}, testOptions(t))
	r.mustBackup(Target{})
	before := r.latestHash()

	changed := r.dev.Mutate(0.01)
	if changed < 1 {
		t.Fatalf("mutate changed %d files", changed)
	}
	res := r.mustBackup(Target{})
	st := r.dev.BackupStats()
	if st.LastFull || st.FilesSent != changed || res.Full {
		t.Fatalf("incremental backup: device sent %d files (full %t), %d changed; result full %t", st.FilesSent, st.LastFull, changed, res.Full)
	}
	if res.Files != int64(changed)+3 {
		t.Errorf("result counts %d files, want %d data files and 3 manifests", res.Files, changed)
	}
	checkMatchesDevice(t, r.latest(), r.dev)

	// The previous backup moved to versions/ untouched, even though the
	// new one started as its hard-link clone and replaced its files.
	versions := r.versions()
	if len(versions) != 1 {
		t.Fatalf("versions: %v", versions)
	}
	after, err := repo.TreeHash(versions[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Error("the previous backup changed during the incremental backup")
	}
}

// TestSlowFirstMessage: a device that takes its time before its first
// request is waited for, within FirstMessageTimeout.
func TestSlowFirstMessage(t *testing.T) {
	opts := testOptions(t)
	opts.FirstMessageTimeout = 5 * time.Second
	opts.StallTimeout = 300 * time.Millisecond // shorter than the delay: not what applies
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20}, Faults: sim.Faults{FirstMessageDelay: time.Second}}, opts)
	r.mustBackup(Target{})
	checkMatchesDevice(t, r.latest(), r.dev)
}

// TestCallerCancels: cancelling the context mid-transfer ends the run at
// once with cause interrupted, drops the staging and releases the phone.
func TestCallerCancels(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 100}}, testOptions(t))
	r.mustBackup(Target{})
	before := r.latestHash()
	r.dev.SetFaults(sim.Faults{SlowLinkBytesPerSec: 256 << 10})

	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var cancelled time.Time
	res, err := r.eng.Run(ctx, r.device(), Target{Repo: r.target, ForceFull: true, Progress: func(p Progress) {
		if p.Files >= 5 && cancelled.IsZero() {
			cancelled = time.Now()
			cancel()
		}
	}})
	if cancelled.IsZero() {
		t.Fatal("never cancelled")
	}
	if err == nil || res.Cause != cause.Interrupted {
		t.Fatalf("run: %v, cause %s; want interrupted", err, res.Cause)
	}
	if d := time.Since(cancelled); d > 3*time.Second {
		t.Errorf("took %v to stop after the cancel", d)
	}
	if r.latestHash() != before {
		t.Error("the last good backup changed")
	}
	if r.stagingLeft() {
		t.Error("staging left behind")
	}
	waitUnlocked(t, r.dev)
	if got := r.dev.Notifications(); got[len(got)-1] != notification.SyncDidFinish {
		t.Errorf("notifications %v end without syncDidFinish", got)
	}
}

// TestEncryption: SetPassword turns encryption on and off, a wrong
// password is wrong_backup_password, and an encrypted backup says so.
func TestEncryption(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20}}, testOptions(t))
	ctx := testCtx(t)
	if err := r.eng.SetPassword(ctx, r.device(), "", "s3cret"); err != nil {
		t.Fatalf("encryption on: %v", err)
	}
	if r.dev.BackupPassword() != "s3cret" {
		t.Fatalf("device password %q", r.dev.BackupPassword())
	}
	res := r.mustBackup(Target{})
	if !res.Encrypted || !r.dev.BackupStats().Encrypted {
		t.Errorf("result encrypted %t, device %+v", res.Encrypted, r.dev.BackupStats())
	}

	err := r.eng.SetPassword(ctx, r.device(), "wrong", "")
	var ce *cause.Error
	if !errors.As(err, &ce) || ce.Code != cause.WrongBackupPassword || ce.DeviceErrorCode != 207 {
		t.Fatalf("wrong password: %v, want wrong_backup_password (207)", err)
	}
	if r.dev.BackupPassword() != "s3cret" {
		t.Fatal("a wrong password changed the setting")
	}
	if err := r.eng.SetPassword(ctx, r.device(), "s3cret", ""); err != nil {
		t.Fatalf("encryption off: %v", err)
	}
	if r.dev.BackupPassword() != "" {
		t.Fatalf("device password %q after off", r.dev.BackupPassword())
	}
	if err := r.eng.SetPassword(ctx, r.device(), "", ""); err == nil {
		t.Error("SetPassword with no password succeeded")
	}
}
