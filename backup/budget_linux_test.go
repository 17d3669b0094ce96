package backup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim"
)

// TestInodeFloodStopsBeforeFull: on a disk with few inodes and plenty of
// space, a device that floods the host with empty files is stopped while
// inodes are still free (the budget's reserve), not by the file system
// running out: the run ends host_disk_full saying so, with ENOSPC
// recorded, and the last good backup is as it was.
func TestInodeFloodStopsBeforeFull(t *testing.T) {
	mnt := mountTmpfs(t, "64m,nr_inodes=40000")
	dir := filepath.Join(mnt, "backups")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20}}, testOptions(t))
	rp, err := repo.Open(dir, repo.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	r.dir, r.repo, r.target = dir, rp, FromRepo(rp)
	r.mustBackup(Target{})
	before := r.latestHash()

	r.dev.SetFaults(sim.Faults{Hostile: "inode-flood"})
	res, err := r.run(Target{ForceFull: true})
	var ce *cause.Error
	if !errors.As(err, &ce) || ce.Code != cause.HostDiskFull || ce.Errno != syscall.ENOSPC {
		t.Fatalf("error %v (%+v), want host_disk_full with ENOSPC", err, res)
	}
	if !strings.Contains(err.Error(), "inodes are free") {
		t.Fatalf("error %v: the file system ran out of inodes before the budget stopped the flood", err)
	}
	t.Logf("flood stopped: %v", err)
	if r.latestHash() != before {
		t.Error("the last good backup changed")
	}
	if r.stagingLeft() {
		t.Error("staging left behind")
	}
	r.dev.SetFaults(sim.Faults{})
	r.mustBackup(Target{})
}

// TestBudget: the files a backup may create, and the inode reserve.
func TestBudget(t *testing.T) {
	b := newBudget(t.TempDir(), 3)
	for i := range 3 {
		if err := b.create(); err != nil {
			t.Fatalf("creation %d of 3: %v", i+1, err)
		}
	}
	err := b.create()
	if !errors.Is(err, syscall.ENOSPC) || cause.Classify(err).Code != cause.HostDiskFull {
		t.Fatalf("creation 4 of 3: %v, want ENOSPC classified host_disk_full", err)
	}
	var none *budget
	if err := none.create(); err != nil {
		t.Fatalf("no budget (no staging): %v", err)
	}
}

// TestHostileFloods: a Manifest.db that never ends or reads as 256 MiB
// records does not verify, and a flood of empty files meets the files
// budget; each run leaves the last good backup as it was and no staging,
// and the next backup succeeds. (One at a time, with the usual stall
// bound: the floods are heavy, and TestHostile's 500 ms bound is not for
// them.)
func TestHostileFloods(t *testing.T) {
	opts := testOptions(t)
	opts.MaxFiles = 2000
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20}}, opts)
	r.mustBackup(Target{})
	for _, mode := range []string{"manifest-endless", "manifest-huge-blobs", "inode-flood"} {
		t.Run(mode, func(t *testing.T) {
			before := r.latestHash()
			r.dev.SetFaults(sim.Faults{Hostile: mode})
			res, err := r.run(Target{ForceFull: true})
			if want := hostileCause(mode); res.Cause != want {
				t.Fatalf("cause %s (%v), want %s", res.Cause, err, want)
			}
			t.Logf("refused: %v", err)
			if r.latestHash() != before {
				t.Error("the last good backup changed")
			}
			if r.stagingLeft() {
				t.Error("staging left behind")
			}
			r.dev.SetFaults(sim.Faults{})
			r.mustBackup(Target{})
		})
	}
}
