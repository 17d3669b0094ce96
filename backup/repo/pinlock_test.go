package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/backupd/backupd/backup/repo"
)

// TestPinAcrossRepos: a pin taken through one Repo (backupd extract, in
// its own process) holds against another Repo on the same directory
// (the service's): its retention keeps the pinned version, its Begin
// refuses while the latest is pinned, and a running backup keeps the
// latest from being pinned. File locks are per open file, so two Repos
// in one test process stand for two processes.
func TestPinAcrossRepos(t *testing.T) {
	dir := t.TempDir()
	svc := openRepo(t, dir, repo.Options{KeepLast: 1})
	reader := openRepo(t, dir, repo.Options{})
	backup(t, svc, testUDID, fakeBackup{Files: files(4, 0), Tag: "0"})
	backup(t, svc, testUDID, fakeBackup{Files: files(4, 1), Tag: "1"})
	v0 := mustVersions(t, svc)[0]
	h0 := treeHash(t, v0.Path)

	before, err := repo.TreeHash(dir)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := reader.Pin(testUDID, v0.Name)
	if err != nil || pin.Unlocked() != nil {
		t.Fatalf("pin: %v, unlocked: %v", err, pin.Unlocked())
	}
	// The pin's lock file is part of no backup.
	if after, err := repo.TreeHash(dir); err != nil || after != before {
		t.Fatalf("pinning changed the backup directory's hash (%v)", err)
	}
	backup(t, svc, testUDID, fakeBackup{Files: files(4, 2), Tag: "2"})
	backup(t, svc, testUDID, fakeBackup{Files: files(4, 3), Tag: "3"})
	if treeHash(t, v0.Path) != h0 {
		t.Fatal("the other Repo's retention removed or changed the pinned version")
	}

	latest, err := reader.Pin(testUDID, repo.LatestName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Begin(context.Background(), testUDID); !errors.Is(err, repo.ErrPinned) {
		t.Fatalf("Begin with the latest pinned by another Repo: %v, want ErrPinned", err)
	}
	latest.Release()
	s, err := svc.Begin(context.Background(), testUDID)
	if err != nil {
		t.Fatalf("Begin after the release: %v", err)
	}
	if _, err := reader.Pin(testUDID, repo.LatestName); !errors.Is(err, repo.ErrBusy) {
		t.Fatalf("pin of the latest while another Repo backs it up: %v, want ErrBusy", err)
	}
	// A version can still be pinned during the backup.
	if p, err := reader.Pin(testUDID, v0.Name); err != nil {
		t.Fatalf("pin of a version during a backup: %v", err)
	} else {
		p.Release()
	}
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}

	pin.Release()
	backup(t, svc, testUDID, fakeBackup{Files: files(4, 4), Tag: "4"})
	if _, err := os.Stat(v0.Path); !os.IsNotExist(err) {
		t.Fatalf("the released version is still kept beyond KeepLast: %v", err)
	}
	if _, err := reader.Pin(testUDID, v0.Name); !errors.Is(err, repo.ErrNoSuchVersion) {
		t.Fatalf("pin of the removed version: %v, want ErrNoSuchVersion", err)
	}
}

// TestPinUnlocked: a reader that cannot make the pin's lock file still
// gets its pin, in its own Repo only, and is told so.
func TestPinUnlocked(t *testing.T) {
	dir := t.TempDir()
	svc := openRepo(t, dir, repo.Options{})
	backup(t, svc, testUDID, fakeBackup{Files: files(2, 0), Tag: "0"})
	// A file where the pins' directory goes: as a read-only backup_dir,
	// no lock file can be made (a test run as root ignores modes).
	pins := filepath.Join(dir, ".backupd", "pins")
	if err := os.RemoveAll(pins); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pins, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	reader := openRepo(t, dir, repo.Options{})
	p, err := reader.Pin(testUDID, repo.LatestName)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	if p.Unlocked() == nil || !p.Version().Latest {
		t.Fatalf("pin %+v: Unlocked() = nil, want why the lock is missing", p.Version())
	}
}
