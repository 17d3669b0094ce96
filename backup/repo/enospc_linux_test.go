package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
)

// mountTmpfs mounts a tmpfs of the given size on a fresh directory. It
// needs root; elsewhere the test is skipped, except in CI (CI=true), where
// not being able to mount is a failure.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		skip("mount tmpfs: %v", err)
	}
	// Cleanups run last-in first-out: this unmount runs before TempDir's
	// removal.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// A clone that runs out of space fails with host_disk_full and leaves
// the latest backup as it was and nothing in staging; hard links, which
// need no room for data, still work on the same disk.
func TestCloneDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "backups")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	content := map[string]string{}
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"} {
		content["Library/"+name] = strings.Repeat(name, 50<<10)
	}
	r := openRepo(t, dir, repo.Options{Clone: repo.CloneCopy})
	backup(t, r, testUDID, fakeBackup{Files: content})
	latest, _ := r.Latest(testUDID)
	before := treeHash(t, latest)

	_, err := r.Begin(context.Background(), testUDID)
	if err == nil {
		t.Fatal("a copy of 600 KiB fit in the 400 KiB left")
	}
	if got := cause.Of(err); got != cause.HostDiskFull || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Begin: %v (cause %s), want host_disk_full from ENOSPC", err, got)
	}
	if got := treeHash(t, latest); got != before {
		t.Fatal("running out of space changed the latest")
	}
	checkNoStaging(t, dir)
	r.Close()

	linked := openRepo(t, dir, repo.Options{})
	s, err := linked.Begin(context.Background(), testUDID)
	if err != nil {
		t.Fatalf("hard-link clone on the full disk: %v", err)
	}
	if st := s.CloneStats(); st.Linked != st.Files {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := treeHash(t, latest); got != before {
		t.Fatal("the latest changed")
	}
}
