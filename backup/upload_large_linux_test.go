package backup

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim"
)

// largeFiles is a phone whose files are all past directAfter, so that
// most of each is written by receiveDirect.
var largeFiles = sim.FileSpec{Count: 8, MinSize: directAfter + 1, MaxSize: 4 << 20}

// TestLargeFilesStoredWhole: files past directAfter, written partly by a
// worker and then by the session, arrive byte for byte, twice in a row.
func TestLargeFilesStoredWhole(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: largeFiles}, testOptions(t))
	res := r.mustBackup(Target{})
	checkMatchesDevice(t, r.latest(), r.dev)
	if st := r.dev.BackupStats(); res.Bytes < st.BytesSent || st.FilesSent != largeFiles.Count {
		t.Errorf("received %d bytes; the device sent %+v", res.Bytes, st)
	}
	r.dev.Mutate(0.5)
	r.mustBackup(Target{ForceFull: true})
	checkMatchesDevice(t, r.latest(), r.dev)
	if r.stagingLeft() {
		t.Error("staging left behind")
	}
}

// TestLargeFileDiskFull: the disk fills up inside a large file. The rest
// of the round is read, the device is told (it reports 105), the run
// ends host_disk_full with ENOSPC, and nothing is left in staging.
func TestLargeFileDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, "64m")
	dir := filepath.Join(mnt, "backups")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// One file of 8 MiB at 16 MiB/s: progress (every 100 ms) comes in
	// the middle of it, past the part its worker writes.
	r := newRig(t, sim.DeviceConfig{
		Files:  sim.FileSpec{Count: 1, MinSize: 8 << 20, MaxSize: 8 << 20},
		Faults: sim.Faults{SlowLinkBytesPerSec: 16 << 20},
	}, testOptions(t))
	rp, err := repo.Open(dir, repo.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	r.dir, r.repo, r.target = dir, rp, FromRepo(rp)
	filled := false
	res, err := r.run(Target{Progress: func(p Progress) {
		// Past the first file's first MiB: the next write is the
		// session's own, and there is no room for it.
		if p.Bytes > directAfter+directAfter/2 && !filled {
			filled = true
			fill(t, filepath.Join(mnt, "filler"))
		}
	}})
	if !filled {
		t.Fatal("the transfer never started")
	}
	var ce *cause.Error
	if !errors.As(err, &ce) || ce.Code != cause.HostDiskFull || ce.Errno != syscall.ENOSPC {
		t.Fatalf("error %v (%#v), want host_disk_full with ENOSPC", err, ce)
	}
	if res.Cause != cause.HostDiskFull || res.DeviceErrorCode != 105 {
		t.Errorf("result cause %s, device code %d; want host_disk_full and the device's 105", res.Cause, res.DeviceErrorCode)
	}
	if r.stagingLeft() {
		t.Error("staging left behind")
	}
}
