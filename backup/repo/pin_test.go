package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
)

// TestPinSurvivesRetention: a version pinned for a restore survives the
// retention of the commits that run meanwhile, is still byte-identical,
// and goes at the first retention after its release.
func TestPinSurvivesRetention(t *testing.T) {
	dir := t.TempDir()
	r := openRepo(t, dir, repo.Options{KeepLast: 1})
	v0, h0 := backup(t, r, testUDID, fakeBackup{Files: files(4, 0), Tag: "0"})
	backup(t, r, testUDID, fakeBackup{Files: files(4, 1), Tag: "1"})
	vs := mustVersions(t, r)
	if len(vs) != 1 || !vs[0].Time.Equal(v0.Time) {
		t.Fatalf("versions %+v, want backup 0", vs)
	}
	pin, err := r.Pin(testUDID, vs[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	if pin.Path() != vs[0].Path || pin.ID() != vs[0].Name {
		t.Fatalf("pin %s %s, want %s", pin.Path(), pin.ID(), vs[0].Path)
	}
	// Two more commits: with KeepLast 1 each would prune backup 0.
	backup(t, r, testUDID, fakeBackup{Files: files(4, 2), Tag: "2"})
	backup(t, r, testUDID, fakeBackup{Files: files(4, 3), Tag: "3"})
	if got := treeHash(t, pin.Path()); got != h0 {
		t.Fatal("the pinned version changed or went away during retention")
	}
	pin.Release()
	pin.Release() // twice is fine
	backup(t, r, testUDID, fakeBackup{Files: files(4, 4), Tag: "4"})
	if _, err := os.Stat(pin.Path()); !os.IsNotExist(err) {
		t.Fatalf("the released version is still kept beyond KeepLast: %v", err)
	}
	if vs := mustVersions(t, r); len(vs) != 1 {
		t.Fatalf("%d versions after release, want 1", len(vs))
	}
}

// TestPinLatestBlocksBackup: while the latest is pinned no backup of its
// device can start (so no commit retires it), and while a backup runs
// the latest cannot be pinned.
func TestPinLatestBlocksBackup(t *testing.T) {
	dir := t.TempDir()
	r := openRepo(t, dir, repo.Options{})
	_, h := backup(t, r, testUDID, fakeBackup{Files: files(3, 0), Tag: "0"})
	pin, err := r.Pin(testUDID, repo.LatestName)
	if err != nil {
		t.Fatal(err)
	}
	if !pin.Version().Latest {
		t.Fatalf("pinned %+v, want the latest", pin.Version())
	}
	_, err = r.Begin(context.Background(), testUDID)
	if !errors.Is(err, repo.ErrPinned) || !errors.Is(err, repo.ErrBusy) {
		t.Fatalf("Begin with the latest pinned: %v, want ErrPinned (an ErrBusy)", err)
	}
	// Another device is not held up.
	backup(t, r, "00008030-0000000000000001", fakeBackup{Files: files(1, 0), Tag: "x"})
	pin.Release()
	s, err := r.Begin(context.Background(), testUDID)
	if err != nil {
		t.Fatalf("Begin after release: %v", err)
	}
	if _, err := r.Pin(testUDID, repo.LatestName); !errors.Is(err, repo.ErrBusy) {
		t.Fatalf("Pin of the latest during a backup: %v, want ErrBusy", err)
	}
	if v, err := r.Pin(testUDID, "2000-01-01"); !errors.Is(err, repo.ErrNoSuchVersion) {
		t.Fatalf("Pin of a date before every backup: %v %v", v, err)
	}
	s.Abort()
	latest, _ := r.Latest(testUDID)
	if treeHash(t, latest) != h {
		t.Fatal("the latest changed")
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	r := openRepo(t, dir, repo.Options{KeepLast: 5})
	var made []repo.Version
	for i := range 3 {
		v, _ := backup(t, r, testUDID, fakeBackup{Files: files(2, i), Tag: string(rune('a' + i))})
		made = append(made, v)
	}
	vs := mustVersions(t, r) // made[1], made[0]
	latestName := made[2].Time.UTC().Format("2006-01-02T15-04-05.000Z")
	tests := []struct {
		which  string
		want   time.Time
		latest bool
		err    error
	}{
		{"", made[2].Time, true, nil},
		{"latest", made[2].Time, true, nil},
		{latestName, made[2].Time, true, nil},
		{vs[1].Name, made[0].Time, false, nil},
		{made[1].Time.Format(time.RFC3339Nano), made[1].Time, false, nil},
		{made[1].Time.Add(time.Millisecond / 2).Format(time.RFC3339Nano), made[1].Time, false, nil},
		{made[0].Time.Add(-time.Second).Format(time.RFC3339), time.Time{}, false, repo.ErrNoSuchVersion},
		{"yesterday", time.Time{}, false, repo.ErrNoSuchVersion},
	}
	for _, tt := range tests {
		v, id, err := r.Resolve(testUDID, tt.which)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Resolve(%q) = %+v, %v; want %v", tt.which, v, err, tt.err)
			}
			continue
		}
		if err != nil || !v.Time.Equal(tt.want) || v.Latest != tt.latest || id == "" {
			t.Errorf("Resolve(%q) = %+v %q %v; want time %v latest %t", tt.which, v, id, err, tt.want, tt.latest)
		}
	}
}

// TestVersionList: newest first, with sizes, counts, encryption, the
// safety mark (which follows the backup when it is retired) and verify
// status.
func TestVersionList(t *testing.T) {
	dir := t.TempDir()
	r := openRepo(t, dir, repo.Options{KeepLast: 5})
	backup(t, r, testUDID, fakeBackup{Files: files(3, 0), Tag: "0"})
	safety, _ := backup(t, r, testUDID, fakeBackup{Files: files(5, 1), Tag: "1", Encrypted: true})
	if err := r.MarkSafety(testUDID, safety, "before restoring 2026-01-01"); err != nil {
		t.Fatal(err)
	}
	backup(t, r, testUDID, fakeBackup{Files: files(2, 2), Tag: "2"})
	// Damage the oldest: a file Manifest.db lists goes missing.
	vs := mustVersions(t, r)
	oldest := vs[len(vs)-1].Path
	entries, _ := filepath.Glob(filepath.Join(oldest, "??", "*"))
	if len(entries) == 0 {
		t.Fatal("no files in the oldest version")
	}
	if err := os.Remove(entries[0]); err != nil {
		t.Fatal(err)
	}
	list, err := r.VersionList(context.Background(), testUDID, repo.ListOptions{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		latest, safety, encrypted, verified bool
		files                               int
	}
	want := []row{{true, false, false, true, 2}, {false, true, true, true, 5}, {false, false, false, false, 2}}
	if len(list) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(list), len(want), list)
	}
	for i, vi := range list {
		got := row{vi.Latest, vi.Safety, vi.Encrypted, vi.Verified != nil && *vi.Verified, vi.FileCount}
		if got != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got, want[i])
		}
		if vi.Size <= 0 || vi.ID == "" {
			t.Errorf("entry %d: size %d, id %q", i, vi.Size, vi.ID)
		}
		if i > 0 && !vi.Time.Before(list[i-1].Time) {
			t.Errorf("entry %d is not older than the one before", i)
		}
		if v, _, err := r.Resolve(testUDID, vi.ID); err != nil || v.Path != vi.Path {
			t.Errorf("entry %d: its ID %q resolves to %+v, %v", i, vi.ID, v, err)
		}
	}
	if !want[2].verified && len(list[2].Problems) == 0 {
		t.Error("the damaged version has no problems listed")
	}
	quick, err := r.VersionList(context.Background(), testUDID, repo.ListOptions{})
	if err != nil || quick[0].Verified != nil || !quick[1].Encrypted {
		t.Fatalf("without verify: %+v %v", quick, err)
	}
}

func mustVersions(t *testing.T, r *repo.Repo) []repo.Version {
	t.Helper()
	vs, err := r.Versions(testUDID)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}
