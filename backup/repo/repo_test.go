package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
)

// clock hands out times a minute apart, so every commit has its own.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 11, 24, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Minute)
	return c.t
}

func openRepo(t testing.TB, dir string, opts repo.Options) *repo.Repo {
	t.Helper()
	if opts.Now == nil {
		opts.Now = newClock().Now
	}
	r, err := repo.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// stage begins a backup and writes b into it, returning the staging and
// the staged tree's hash.
func stage(t testing.TB, r *repo.Repo, udid string, b fakeBackup) (*repo.Staging, string) {
	t.Helper()
	s, err := r.Begin(context.Background(), udid)
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(s.Dir(), udid)
	writeBackup(t, tree, b)
	return s, treeHash(t, tree)
}

// backup runs one whole backup and returns the version it made and the
// tree's hash.
func backup(t testing.TB, r *repo.Repo, udid string, b fakeBackup) (repo.Version, string) {
	t.Helper()
	s, h := stage(t, r, udid, b)
	v, err := s.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v, h
}

func TestValidUDID(t *testing.T) {
	tests := []struct {
		udid string
		ok   bool
	}{
		{"00008030-001A2B3C4D5E802E", true},
		{"3f1c2a9b0d4e5f60718293a4b5c6d7e8f9012345", true},
		{"a", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"../etc", false},
		{"a/b", false},
		{`a\b`, false},
		{".backupd", false},
		{"a b", false},
		{"ä", false},
		{"abc\x00", false},
		{"CON", false},
		{"nul", false},
		{"com1", false},
		{"LPT9", false},
		{"COM10", true},
		{"CONX", true},
	}
	for _, tt := range tests {
		err := repo.ValidUDID(tt.udid)
		if (err == nil) != tt.ok {
			t.Errorf("ValidUDID(%q) = %v, want ok=%t", tt.udid, err, tt.ok)
		}
		if err != nil && !errors.Is(err, repo.ErrInvalidUDID) {
			t.Errorf("ValidUDID(%q) = %v, not ErrInvalidUDID", tt.udid, err)
		}
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		opts repo.Options
		code cause.Code // cause.None: no error
		says string
	}{
		{"an existing directory", dir, repo.Options{}, cause.None, ""},
		{"missing: an unmounted disk, not created", filepath.Join(dir, "missing"), repo.Options{}, cause.HostNotWritable, "does not exist"},
		{"a file", file, repo.Options{}, cause.HostNotWritable, "not a directory"},
		{"an unknown clone mode", dir, repo.Options{Clone: 7}, cause.Unknown, "clone mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := repo.Open(tt.dir, tt.opts)
			if tt.code == cause.None {
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
				if names := dirEntries(t, tt.dir); slices.Contains(names, ".backupd") {
					t.Errorf("Open wrote into the backup directory: %v", names)
				}
				return
			}
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if got := cause.Of(err); got != tt.code || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Open: %v (cause %s), want cause %s saying %q", err, got, tt.code, tt.says)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("Open created the missing directory: %v", err)
	}
}

// checkNoStaging: nothing left in staging or trash.
func checkNoStaging(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"staging", "trash"} {
		if names := dirEntries(t, filepath.Join(dir, ".backupd", d)); len(names) != 0 {
			t.Fatalf(".backupd/%s holds %v", d, names)
		}
	}
}

// On this machine's file systems hard links work, so CloneAuto must use
// them: the clone shares every inode with the latest.
func TestBeginHardLinks(t *testing.T) {
	dir := t.TempDir()
	r := openRepo(t, dir, repo.Options{})
	backup(t, r, testUDID, fakeBackup{Files: files(10, 1)})
	s, err := r.Begin(context.Background(), testUDID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abort()
	st := s.CloneStats()
	if st.Reflinked == 0 && st.Linked != st.Files {
		t.Fatalf("CloneAuto on a file system with hard links: %+v", st)
	}
	if st.Linked > 0 {
		latest, _ := r.Latest(testUDID)
		a, _ := os.Stat(filepath.Join(latest, "Manifest.db"))
		b, _ := os.Stat(filepath.Join(s.Dir(), testUDID, "Manifest.db"))
		if !os.SameFile(a, b) {
			t.Fatal("Manifest.db was not hard linked")
		}
	}
}

func TestRetention(t *testing.T) {
	for _, keep := range []int{1, 2, 3, -1} {
		t.Run(map[int]string{1: "keep 1", 2: "keep 2", 3: "keep 3", -1: "keep none"}[keep], func(t *testing.T) {
			dir := t.TempDir()
			r := openRepo(t, dir, repo.Options{KeepLast: keep})
			var made []repo.Version
			var hashes []string
			for i := range 6 {
				v, h := backup(t, r, testUDID, fakeBackup{Files: files(5, i), Tag: string(rune('a' + i))})
				made, hashes = append(made, v), append(hashes, h)
				vs, err := r.Versions(testUDID)
				if err != nil {
					t.Fatal(err)
				}
				want := min(max(keep, 0), i)
				if len(vs) != want {
					t.Fatalf("after backup %d: %d versions, want %d", i, len(vs), want)
				}
				// Newest first: versions[k] is backup i-1-k.
				for k, v := range vs {
					b := i - 1 - k
					if !v.Time.Equal(made[b].Time) {
						t.Fatalf("after backup %d: version %d is from %v, want backup %d's %v", i, k, v.Time, b, made[b].Time)
					}
					if got := treeHash(t, v.Path); got != hashes[b] {
						t.Fatalf("after backup %d: version %d does not hold backup %d", i, k, b)
					}
				}
				latest, _ := r.Latest(testUDID)
				if got := treeHash(t, latest); got != h {
					t.Fatalf("after backup %d: the latest is not it", i)
				}
			}
			checkNoStaging(t, dir)
		})
	}
}

// Versions lists only version directories; anything else a person put
// there is neither listed nor removed by retention.
func TestVersionsIgnoresForeignEntries(t *testing.T) {
	dir := t.TempDir()
	r := openRepo(t, dir, repo.Options{KeepLast: 1})
	backup(t, r, testUDID, fakeBackup{Files: files(2, 1), Tag: "1"})
	vdir := filepath.Join(dir, ".backupd", "versions", testUDID)
	if err := os.MkdirAll(filepath.Join(vdir, "my notes"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"2025-11-24T09-01-00.000Z-1", "2025-11-24T09-01-00.000Z-02", "2025-13-24T09-01-00.000Z"} {
		if err := os.Mkdir(filepath.Join(vdir, name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		backup(t, r, testUDID, fakeBackup{Files: files(2, i+2), Tag: string(rune('b' + i))})
	}
	vs, err := r.Versions(testUDID)
	if err != nil || len(vs) != 1 {
		t.Fatalf("Versions = %+v, %v; want one", vs, err)
	}
	if got := dirEntries(t, vdir); len(got) != 5 {
		t.Fatalf("versions dir holds %v: retention removed a foreign entry", got)
	}
	if _, err := r.Versions("../x"); !errors.Is(err, repo.ErrInvalidUDID) {
		t.Fatalf("Versions(../x) = %v", err)
	}
	if _, ok := r.Latest("../x"); ok {
		t.Fatal("Latest(../x) ok")
	}
}

// Two versions completed in the same millisecond get distinct names.
func TestVersionNameCollision(t *testing.T) {
	dir := t.TempDir()
	fixed := time.Date(2025, 1, 2, 3, 4, 5, 6e6, time.UTC)
	r := openRepo(t, dir, repo.Options{KeepLast: 5, Now: func() time.Time { return fixed }})
	var hashes []string
	for i := range 4 {
		_, h := backup(t, r, testUDID, fakeBackup{Files: files(2, i), Tag: string(rune('a' + i))})
		hashes = append(hashes, h)
	}
	vs, err := r.Versions(testUDID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
	}
	want := []string{"2025-01-02T03-04-05.006Z-3", "2025-01-02T03-04-05.006Z-2", "2025-01-02T03-04-05.006Z"}
	if !slices.Equal(names, want) {
		t.Fatalf("version names %q, want %q", names, want)
	}
	for k, v := range vs {
		if got := treeHash(t, v.Path); got != hashes[2-k] {
			t.Fatalf("version %s does not hold backup %d", v.Name, 2-k)
		}
	}
}

func TestBeginBusyAndLocked(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	r := openRepo(t, dir, repo.Options{})
	s, err := r.Begin(ctx, testUDID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Begin(ctx, testUDID); !errors.Is(err, repo.ErrBusy) {
		t.Fatalf("second Begin: %v, want ErrBusy", err)
	}
	other, err := r.Begin(ctx, "abcdef0123456789")
	if err != nil {
		t.Fatalf("Begin for another device: %v", err)
	}
	other.Abort()
	if _, err := r.Begin(ctx, "../../etc"); !errors.Is(err, repo.ErrInvalidUDID) {
		t.Fatalf("Begin(../../etc): %v", err)
	}

	// Another Repo on the same directory may read but not change it.
	r2 := openRepo(t, dir, repo.Options{})
	if _, err := r2.Begin(ctx, "abcdef0123456789"); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("Begin in a second Repo: %v, want ErrLocked", err)
	}
	if _, err := r2.Recover(ctx); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("Recover in a second Repo: %v, want ErrLocked", err)
	}
	if _, err := r2.Versions(testUDID); err != nil {
		t.Fatal(err)
	}

	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	s, err = r.Begin(ctx, testUDID)
	if err != nil {
		t.Fatalf("Begin after Abort: %v", err)
	}
	s.Abort()

	r.Close()
	if _, err := r.Begin(ctx, testUDID); !errors.Is(err, repo.ErrClosed) {
		t.Fatalf("Begin after Close: %v", err)
	}
	r3 := openRepo(t, dir, repo.Options{})
	if _, err := r3.Recover(ctx); err != nil {
		t.Fatalf("Recover once the first Repo closed: %v", err)
	}
}

// Many devices at once, as the daemon runs them.
func TestConcurrentDevices(t *testing.T) {
	dir := t.TempDir()
	r := openRepo(t, dir, repo.Options{KeepLast: 2})
	udids := []string{"aaaa", "bbbb", "cccc", "dddd"}
	var wg sync.WaitGroup
	errs := make(chan error, len(udids))
	for _, u := range udids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3 {
				s, err := r.Begin(context.Background(), u)
				if err != nil {
					errs <- err
					return
				}
				writeBackup(t, filepath.Join(s.Dir(), u), fakeBackup{Files: files(5, i), Tag: u})
				if _, err := s.Commit(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, u := range udids {
		if vs, err := r.Versions(u); err != nil || len(vs) != 2 {
			t.Fatalf("%s: versions %+v, %v", u, vs, err)
		}
	}
	checkNoStaging(t, dir)
}

// A backup that does not verify is not committed: the error says why, the
// latest is untouched, the staging stays open until aborted.
func TestCommitRefusesUnverifiedBackup(t *testing.T) {
	dir := t.TempDir()
	r := openRepo(t, dir, repo.Options{})
	backup(t, r, testUDID, fakeBackup{Files: files(5, 1), Tag: "1"})
	latest, _ := r.Latest(testUDID)
	before := treeHash(t, latest)

	s, _ := stage(t, r, testUDID, fakeBackup{Files: files(5, 2), State: "uploading", Tag: "2"})
	_, err := s.Commit(context.Background())
	if cause.Of(err) != cause.VerifyFailed || !strings.Contains(err.Error(), "SnapshotState") {
		t.Fatalf("Commit: %v, want verify_failed about SnapshotState", err)
	}
	if got := treeHash(t, latest); got != before {
		t.Fatal("a failed commit changed the latest")
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), testUDID, "Status.plist")); err != nil {
		t.Fatalf("the staging was not kept open: %v", err)
	}
	if _, err := r.Begin(context.Background(), testUDID); !errors.Is(err, repo.ErrBusy) {
		t.Fatalf("Begin while the failed staging is open: %v", err)
	}
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	checkNoStaging(t, dir)
	if vs, _ := r.Versions(testUDID); len(vs) != 0 {
		t.Fatalf("a failed commit made a version: %+v", vs)
	}

	// A staging whose device never created its directory.
	s, err = r.Begin(context.Background(), "feedface")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(s.Dir(), "feedface"))
	if _, err := s.Commit(context.Background()); cause.Of(err) != cause.VerifyFailed {
		t.Fatalf("Commit of an empty staging: %v", err)
	}
	s.Abort()
}

func TestTreeHash(t *testing.T) {
	mk := func(t *testing.T) string {
		d := t.TempDir()
		os.MkdirAll(filepath.Join(d, "a", "b"), 0o700)
		os.WriteFile(filepath.Join(d, "a", "f"), []byte("one"), 0o600)
		os.WriteFile(filepath.Join(d, "a", "b", "g"), []byte("two"), 0o600)
		return d
	}
	base := treeHash(t, mk(t))
	if base != treeHash(t, mk(t)) {
		t.Fatal("equal trees hash differently")
	}
	changes := []struct {
		name string
		f    func(d string)
	}{
		{"content", func(d string) { os.WriteFile(filepath.Join(d, "a", "f"), []byte("One"), 0o600) }},
		{"new empty file", func(d string) { os.WriteFile(filepath.Join(d, "h"), nil, 0o600) }},
		{"new empty dir", func(d string) { os.Mkdir(filepath.Join(d, "c"), 0o700) }},
		{"rename", func(d string) { os.Rename(filepath.Join(d, "a", "f"), filepath.Join(d, "a", "f2")) }},
		{"mode", func(d string) { os.Chmod(filepath.Join(d, "a", "f"), 0o644) }},
		{"moved between dirs", func(d string) { os.Rename(filepath.Join(d, "a", "b", "g"), filepath.Join(d, "a", "g")) }},
		{"symlink", func(d string) { os.Symlink("f", filepath.Join(d, "a", "l")) }},
	}
	for _, c := range changes {
		d := mk(t)
		c.f(d)
		if treeHash(t, d) == base {
			t.Errorf("%s: hash unchanged", c.name)
		}
	}
	d := mk(t)
	os.Chtimes(filepath.Join(d, "a", "f"), time.Unix(1, 0), time.Unix(1, 0))
	if treeHash(t, d) != base {
		t.Error("a modification time changed the hash")
	}
	if _, err := repo.TreeHash(filepath.Join(d, "missing")); err == nil {
		t.Error("TreeHash of a missing directory succeeded")
	}
}
