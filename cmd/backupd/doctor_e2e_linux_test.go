package main

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/doctor"
)

// TestE2EDoctorRealFullDisk puts backup_dir on a small tmpfs filled to
// the brim (in a private mount namespace): only the free space check
// fails, and the folder itself still counts as usable.
func TestE2EDoctorRealFullDisk(t *testing.T) {
	if !inMountNamespace(t) {
		return
	}
	e := newEnv(t, 1)
	udid := e.firstUDID(t)
	backups := filepath.Join(e.dir, "backups")
	if err := syscall.Mount("tmpfs", backups, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mount a tmpfs on backup_dir: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(backups, syscall.MNT_DETACH) })
	fillDisk(t, filepath.Join(backups, "filler"))
	cfg := e.variant(t, "margin", "free_space_margin = 0", `free_space_margin = "1MiB"`)
	e.expectOneFailure(t, cfg, udid+"/"+doctor.IDFreeSpace, cause.HostDiskFull)
}
