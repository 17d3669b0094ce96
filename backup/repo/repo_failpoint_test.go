//go:build failpoint

package repo_test

// The tests of the Repo that need failpoints to force a fallback (the
// commit without the atomic exchange, hard links refused); make test
// runs them with the failpoint tag.

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
)

func TestBeginCommitAbort(t *testing.T) {
	for _, mode := range []repo.CloneMode{repo.CloneAuto, repo.CloneCopy, repo.CloneNone} {
		for _, noExchange := range []bool{false, true} {
			name := mode.String()
			if noExchange {
				name += "/two renames"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				r := openRepo(t, dir, repo.WithFailpoints(repo.Options{Clone: mode}, repo.Failpoints{TwoRenames: noExchange}))
				ctx := context.Background()
				if _, ok := r.Latest(testUDID); ok {
					t.Fatal("Latest before any backup")
				}

				// First backup: nothing to clone, no version to make.
				s, err := r.Begin(ctx, testUDID)
				if err != nil {
					t.Fatal(err)
				}
				if want := filepath.Join(dir, ".backupd", "staging", testUDID, "root"); s.Dir() != want {
					t.Fatalf("Dir() = %s, want %s", s.Dir(), want)
				}
				tree := filepath.Join(s.Dir(), testUDID)
				if got := dirEntries(t, tree); len(got) != 0 {
					t.Fatalf("first staging is not empty: %v", got)
				}
				writeBackup(t, tree, fakeBackup{Files: files(20, 1), Tag: "1"})
				h1 := treeHash(t, tree)
				v1, err := s.Commit(ctx)
				if err != nil {
					t.Fatal(err)
				}
				latest, ok := r.Latest(testUDID)
				if !ok || latest != filepath.Join(dir, testUDID) || v1.Path != latest || !v1.Latest {
					t.Fatalf("after commit: Latest = %q, %t; version %+v", latest, ok, v1)
				}
				if got := treeHash(t, latest); got != h1 {
					t.Fatal("the latest is not the tree that was staged")
				}
				if fi, err := os.Stat(latest); err != nil || fi.Mode().Perm() != 0o700 {
					t.Fatalf("latest's mode: %v, %v; want 0700", fi.Mode(), err)
				}
				if err := s.Abort(); err != nil {
					t.Fatalf("Abort after Commit: %v", err)
				}
				if _, err := s.Commit(ctx); !errors.Is(err, repo.ErrFinished) {
					t.Fatalf("second Commit: %v, want ErrFinished", err)
				}
				if vs, _ := r.Versions(testUDID); len(vs) != 0 {
					t.Fatalf("versions after the first backup: %+v", vs)
				}
				checkNoStaging(t, dir)

				// Second backup, aborted: the latest stays byte-identical.
				s, err = r.Begin(ctx, testUDID)
				if err != nil {
					t.Fatal(err)
				}
				tree = filepath.Join(s.Dir(), testUDID)
				checkClone(t, mode, latest, tree, s.CloneStats())
				writeBackup(t, tree, fakeBackup{Files: files(25, 2), Tag: "2"})
				if got := treeHash(t, latest); got != h1 {
					t.Fatal("writing into the staging changed the latest")
				}
				if err := s.Abort(); err != nil {
					t.Fatal(err)
				}
				if got := treeHash(t, latest); got != h1 {
					t.Fatal("Abort changed the latest")
				}
				checkNoStaging(t, dir)

				// Third backup, committed: the previous one becomes a version.
				s, h3 := stage(t, r, testUDID, fakeBackup{Files: files(30, 3), Tag: "3"})
				if h3 == h1 {
					t.Fatal("test backups should differ")
				}
				v3, err := s.Commit(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got := treeHash(t, latest); got != h3 {
					t.Fatal("the latest is not the third backup")
				}
				vs, err := r.Versions(testUDID)
				if err != nil {
					t.Fatal(err)
				}
				if mode == repo.CloneNone {
					if len(vs) != 0 {
						t.Fatalf("CloneNone kept versions: %+v", vs)
					}
				} else {
					if len(vs) != 1 {
						t.Fatalf("versions: %+v, want the first backup", vs)
					}
					if got := treeHash(t, vs[0].Path); got != h1 {
						t.Fatal("the version is not the first backup")
					}
					if !vs[0].Time.Equal(v1.Time) || vs[0].UDID != testUDID || vs[0].Latest {
						t.Fatalf("version %+v; the first commit was at %v", vs[0], v1.Time)
					}
					if fi, err := os.Stat(vs[0].Path); err != nil || fi.Mode().Perm() != 0o700 {
						t.Fatalf("version directory mode: %v, %v", fi.Mode(), err)
					}
				}
				if !v3.Time.After(v1.Time) {
					t.Fatalf("commit times %v then %v", v1.Time, v3.Time)
				}
				checkNoStaging(t, dir)
				if fi, err := os.Stat(filepath.Join(dir, ".backupd")); err != nil || fi.Mode().Perm() != 0o700 {
					t.Fatalf(".backupd mode: %v, %v", fi.Mode(), err)
				}
			})
		}
	}
}

// Where link(2) fails as unsupported, CloneAuto copies instead and says so
// once per Repo, however many backups follow.
func TestBeginFallsBackToCopy(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EXDEV, syscall.EPERM} {
		t.Run(errno.Error(), func(t *testing.T) {
			dir := t.TempDir()
			var notices []string
			opts := repo.Options{Notice: func(m string) { notices = append(notices, m) }}
			r := openRepo(t, dir, repo.WithFailpoints(opts, repo.Failpoints{LinkErr: errno}))
			backup(t, r, testUDID, fakeBackup{Files: files(10, 1)})
			latest, _ := r.Latest(testUDID)
			for i := range 2 {
				s, err := r.Begin(context.Background(), testUDID)
				if err != nil {
					t.Fatal(err)
				}
				st := s.CloneStats()
				if st.Linked != 0 || st.Reflinked+st.Copied != st.Files || st.Files == 0 {
					t.Fatalf("backup %d: stats %+v", i, st)
				}
				if st.Copied > 0 && st.CopiedBytes == 0 {
					t.Fatalf("copied %d files of no bytes", st.Copied)
				}
				checkClone(t, repo.CloneCopy, latest, filepath.Join(s.Dir(), testUDID), st)
				if err := s.Abort(); err != nil {
					t.Fatal(err)
				}
			}
			if len(notices) != 1 || !strings.Contains(notices[0], "hard links") {
				t.Fatalf("notices %q, want one about hard links", notices)
			}
		})
	}
}

// A link error that is not "unsupported" is a real error: Begin fails,
// classified, and leaves nothing behind.
func TestBeginCloneError(t *testing.T) {
	dir := t.TempDir()
	r := openRepo(t, dir, repo.WithFailpoints(repo.Options{}, repo.Failpoints{LinkErr: syscall.ENOSPC}))
	// The first backup has nothing to clone.
	backup(t, r, testUDID, fakeBackup{Files: files(3, 1)})
	latest, _ := r.Latest(testUDID)
	before := treeHash(t, latest)
	s, err := r.Begin(context.Background(), testUDID)
	if err == nil {
		if s.CloneStats().Reflinked > 0 {
			s.Abort()
			t.Skip("this file system reflinks, so the failing hard link is never tried")
		}
		t.Fatal("Begin succeeded")
	}
	if got := cause.Of(err); got != cause.HostDiskFull {
		t.Fatalf("Begin: %v (cause %s), want host_disk_full", err, got)
	}
	if got := treeHash(t, latest); got != before {
		t.Fatal("a failed Begin changed the latest")
	}
	checkNoStaging(t, dir)
	// The device's slot is free again: the next Begin fails the same way,
	// not with ErrBusy.
	if _, err := r.Begin(context.Background(), testUDID); errors.Is(err, repo.ErrBusy) || cause.Of(err) != cause.HostDiskFull {
		t.Fatalf("Begin again: %v", err)
	}
}

// checkClone checks that a fresh staging tree holds the latest backup,
// cloned the way the mode says.
func checkClone(t *testing.T, mode repo.CloneMode, latest, tree string, st repo.CloneStats) {
	t.Helper()
	if mode == repo.CloneNone {
		if got := dirEntries(t, tree); len(got) != 0 || st.Files != 0 {
			t.Fatalf("CloneNone staging holds %v (stats %+v)", got, st)
		}
		return
	}
	want := regularFiles(t, latest)
	if got := regularFiles(t, tree); !slices.Equal(got, want) {
		t.Fatalf("clone has %d files, latest %d", len(got), len(want))
	}
	if st.Files != len(want) || st.Reflinked+st.Linked+st.Copied != st.Files {
		t.Fatalf("clone stats %+v for %d files", st, len(want))
	}
	for _, rel := range want {
		a, err := os.Stat(filepath.Join(latest, rel))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.Stat(filepath.Join(tree, rel))
		if err != nil {
			t.Fatal(err)
		}
		same := os.SameFile(a, b)
		switch {
		case mode == repo.CloneAuto && st.Linked == st.Files && !same:
			t.Fatalf("%s was hard linked by the stats but is not the same file", rel)
		case mode == repo.CloneCopy && same:
			t.Fatalf("CloneCopy hard linked %s", rel)
		}
		if !a.ModTime().Equal(b.ModTime()) {
			t.Errorf("%s: modification time %v, latest has %v", rel, b.ModTime(), a.ModTime())
		}
	}
	if mode == repo.CloneCopy && st.Linked != 0 {
		t.Fatalf("CloneCopy stats %+v", st)
	}
	if treeHash(t, tree) != treeHash(t, latest) {
		t.Fatal("the clone differs from the latest")
	}
}

// regularFiles lists the regular files under dir, relative.
func regularFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
