package backup

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim"
)

// faultCase is one way a backup fails, and what the run must say.
type faultCase struct {
	name   string
	faults sim.Faults
	opts   func(*Options)
	want   cause.Code
	// deviceCode is the ErrorCode the device must have reported (0: none).
	deviceCode int
}

func faultCases() []faultCase {
	var cases []faultCase
	for _, step := range sim.BackupSteps() {
		cases = append(cases, faultCase{name: "unplug at " + step, faults: sim.Faults{UnplugAtStep: step}, want: cause.Disconnected})
	}
	short := func(o *Options) { o.StallTimeout = 400 * time.Millisecond }
	return append(cases,
		faultCase{name: "unplug mid-file", faults: sim.Faults{UnplugAfterBytes: 40 << 10}, want: cause.Disconnected},
		faultCase{name: "unplug between files", faults: sim.Faults{UnplugAfterFiles: 3}, want: cause.Disconnected},
		faultCase{name: "device reports no space (105)", faults: sim.Faults{ErrorCode: 105}, want: cause.HostDiskFull, deviceCode: 105},
		faultCase{name: "passcode never entered (208)", faults: sim.Faults{PasscodeNeverEntered: true, PasscodeDelay: 200 * time.Millisecond}, want: cause.PasscodeNotEntered, deviceCode: 208},
		faultCase{name: "snapshot failed (3)", faults: sim.Faults{ErrorCode: 3}, want: cause.DeviceSnapshotFailed, deviceCode: 3},
		faultCase{name: "wrong password (207)", faults: sim.Faults{ErrorCode: 207}, want: cause.WrongBackupPassword, deviceCode: 207},
		faultCase{name: "unknown device error", faults: sim.Faults{ErrorCode: 4242}, want: cause.ProtocolError, deviceCode: 4242},
		faultCase{name: "no protocol version in common", faults: sim.Faults{NoCommonVersion: true}, want: cause.IOSUnsupported},
		faultCase{name: "sync lock never granted", faults: sim.Faults{LockNeverGranted: true}, want: cause.DeviceBusy},
		faultCase{name: "stall mid-file", faults: sim.Faults{StallAfterBytes: 40 << 10}, opts: short, want: cause.Stalled},
		// The phone stays attached: it may think up to ThinkTimeout.
		faultCase{name: "no first message in time", faults: sim.Faults{FirstMessageDelay: 5 * time.Second},
			opts: func(o *Options) { o.FirstMessageTimeout, o.ThinkTimeout = 300*time.Millisecond, time.Second }, want: cause.Stalled},
	)
}

// TestFaults: every fault ends the run with its cause, leaves the last
// good backup byte for byte as it was and no staging behind, and the
// device can be backed up again once the fault is gone.
func TestFaults(t *testing.T) {
	for _, tc := range faultCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := testOptions(t)
			if tc.opts != nil {
				tc.opts(&opts)
			}
			r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 150, MaxSize: 128 << 10}}, opts)
			r.mustBackup(Target{})
			before := r.latestHash()
			// So that an incremental backup has a few hundred KiB to send.
			r.dev.Mutate(0.05)

			r.dev.SetFaults(tc.faults)
			start := time.Now()
			res, err := r.run(Target{})
			if err == nil {
				t.Fatalf("backup succeeded: %+v", res)
			}
			var ce *cause.Error
			if !errors.As(err, &ce) || ce.Code != tc.want || res.Cause != tc.want {
				t.Fatalf("error %v (result cause %s), want cause %s", err, res.Cause, tc.want)
			}
			if res.DeviceErrorCode != tc.deviceCode || ce.DeviceErrorCode != tc.deviceCode {
				t.Errorf("device code %d in result, %d in error; want %d", res.DeviceErrorCode, ce.DeviceErrorCode, tc.deviceCode)
			}
			t.Logf("failed in %v: %v", time.Since(start), err)
			unplugs := tc.faults.UnplugAtStep != "" || tc.faults.UnplugAfterBytes > 0 || tc.faults.UnplugAfterFiles > 0
			if unplugs && r.dev.Plugged() {
				t.Error("the fault never struck: the device is still plugged")
			}
			if got := r.latestHash(); got != before {
				t.Error("the last good backup changed")
			}
			if r.stagingLeft() {
				t.Error("staging left behind")
			}
			if vs := r.versions(); len(vs) != 0 {
				t.Errorf("a failed run made a version: %v", vs)
			}

			// The device recovers.
			r.dev.SetFaults(sim.Faults{})
			if !r.dev.Plugged() {
				r.dev.Plug()
			}
			waitUnlocked(t, r.dev)
			r.mustBackup(Target{})
			checkMatchesDevice(t, r.latest(), r.dev)
		})
	}
}

// waitUnlocked waits for the device to notice that a dropped host's sync
// lock is gone.
func waitUnlocked(t *testing.T, d *sim.Device) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for d.SyncLocked() {
		if time.Now().After(deadline) {
			t.Fatal("the sync lock is still held after the run")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hostileCause is how a run against a hostile mode ends: a Manifest.db
// no phone writes does not verify, an inode flood fills the host's
// budget, and every other attack breaks the protocol.
func hostileCause(mode string) cause.Code {
	switch mode {
	case "manifest-endless", "manifest-huge-blobs":
		return cause.VerifyFailed
	case "inode-flood":
		return cause.HostDiskFull
	}
	return cause.ProtocolError
}

// TestHostile: a device that names paths outside the backup, or floods
// the host, is refused: the run ends as hostileCause says and nothing
// outside the staging root is created, changed or removed.
func TestHostile(t *testing.T) {
	for _, mode := range sim.HostileModes() {
		if hostileCause(mode) != cause.ProtocolError || mode == "app-flood" {
			// Not with the others, in parallel under a 500 ms stall
			// bound: TestHostileFloods and TestInfoPlistBudget.
			continue
		}
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			opts := testOptions(t)
			// The truncated message never completes: a short bound makes
			// the wait for its end short.
			opts.StallTimeout = 500 * time.Millisecond
			opts.FirstMessageTimeout = 500 * time.Millisecond
			// The endless file is one the size of no file on the phone.
			opts.MaxFileSize = 1 << 20
			// The inode flood is stopped by this bound, not by the disk.
			opts.MaxFiles = 2000
			r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20}}, opts)
			r.mustBackup(Target{})

			// Bait beside the backups: what the escape modes would hit.
			sentinel := filepath.Join(r.base, "sentinel")
			for _, d := range []string{sentinel, filepath.Join(r.base, "backupd-hostile-remove"), filepath.Join(r.dir, "backupd-hostile-remove")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "keep"), []byte("bait"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			target := r.target
			if mode == "symlink" {
				target = plantingRepo{r.target, func(dir string) error {
					link := filepath.Join(dir, r.dev.UDID(), "Snapshot")
					if err := os.MkdirAll(link, 0o755); err != nil {
						return err
					}
					return os.Symlink(sentinel, filepath.Join(link, "link"))
				}}
			}
			treeBefore, err := listTree(r.base)
			if err != nil {
				t.Fatal(err)
			}
			hashBefore, err := repo.TreeHash(r.base)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove("/tmp/backupd-hostile-absolute")

			r.dev.SetFaults(sim.Faults{Hostile: mode})
			res, err := r.run(Target{Repo: target, ForceFull: true})
			if err == nil {
				t.Fatalf("hostile backup succeeded: %+v", res)
			}
			if want := hostileCause(mode); res.Cause != want {
				t.Fatalf("cause %s (%v), want %s", res.Cause, err, want)
			}
			switch mode {
			case "dotdot", "absolute", "symlink", "mkdir-escape", "move-escape", "remove-escape", "endless-file":
				if !errors.Is(err, ErrHostile) {
					t.Errorf("error %v does not say the device was hostile", err)
				}
			}
			t.Logf("refused: %v", err)
			if _, err := os.Lstat("/tmp/backupd-hostile-absolute"); err == nil {
				t.Error("/tmp/backupd-hostile-absolute was created")
			}
			if r.stagingLeft() {
				t.Error("staging left behind")
			}
			treeAfter, err := listTree(r.base)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(treeBefore, treeAfter) {
				t.Errorf("the tree around the backup changed:\nbefore %v\nafter  %v", treeBefore, treeAfter)
			}
			if h, _ := repo.TreeHash(r.base); h != hashBefore {
				t.Error("content around the backup changed")
			}
		})
	}
}
