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

// mountTmpfs mounts a tmpfs of size bytes for the test. It needs root;
// outside CI a test without it is skipped, in CI it fails.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test mounts a tmpfs and needs root; CI runs as root")
		}
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestRealDiskFull: the disk fills up in the middle of the transfer. The
// run ends host_disk_full with ENOSPC recorded, the device is told (it
// reports 105), and the last good backup is as it was.
func TestRealDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, "48m")
	dir := filepath.Join(mnt, "backups")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 200, MaxSize: 96 << 10}}, testOptions(t))
	rp, err := repo.Open(dir, repo.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	r.dir, r.repo, r.target = dir, rp, FromRepo(rp)
	r.mustBackup(Target{})
	before := r.latestHash()

	filled := false
	filler := filepath.Join(mnt, "filler")
	res, err := r.run(Target{ForceFull: true, Progress: func(p Progress) {
		// Once the device starts sending files, take the rest of the disk.
		if p.Percent >= 2 && !filled {
			filled = true
			fill(t, filler)
		}
	}})
	if !filled {
		t.Fatal("the transfer never started")
	}
	if err == nil {
		t.Fatalf("backup succeeded on a full disk: %+v", res)
	}
	var ce *cause.Error
	if !errors.As(err, &ce) || ce.Code != cause.HostDiskFull || ce.Errno != syscall.ENOSPC {
		t.Fatalf("error %v (%#v), want host_disk_full with ENOSPC", err, ce)
	}
	if res.Cause != cause.HostDiskFull || res.DeviceErrorCode != 105 {
		t.Errorf("result cause %s, device code %d; want host_disk_full and the device's 105", res.Cause, res.DeviceErrorCode)
	}
	t.Logf("full disk: %v", err)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if r.latestHash() != before {
		t.Error("the last good backup changed")
	}
	if r.stagingLeft() {
		t.Error("staging left behind")
	}
	// Space again: the next backup works.
	r.mustBackup(Target{})
	checkMatchesDevice(t, r.latest(), r.dev)
}
