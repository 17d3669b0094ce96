package contents

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
)

var t0 = time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)

func sampleFiles() []testFile {
	return []testFile{
		{domain: "CameraRollDomain", rel: "Media", kind: KindDir, mtime: t0},
		{domain: "CameraRollDomain", rel: "Media/DCIM/100APPLE/IMG_0001.HEIC", kind: KindFile, content: bytes.Repeat([]byte("photo"), 5000), mtime: t0},
		{domain: "CameraRollDomain", rel: "Media/DCIM/100APPLE/IMG_0002.MOV", kind: KindFile, content: []byte("video"), mtime: t0.Add(time.Hour)},
		{domain: "CameraRollDomain", rel: "Media/DCIM/100APPLE/IMG_0002.AAE", kind: KindFile, content: []byte("<plist/>"), mtime: t0},
		{domain: "CameraRollDomain", rel: "Media/PhotoData/Photos.sqlite", kind: KindFile, content: []byte("db"), mtime: t0},
		{domain: "HomeDomain", rel: "Library/Preferences/com.apple.x.plist", kind: KindFile, content: []byte("prefs"), mtime: t0.Add(-time.Hour)},
		{domain: "HomeDomain", rel: "Library/empty", kind: KindFile, content: nil, mtime: t0},
		{domain: "HomeDomain", rel: "Library/link", kind: KindSymlink, target: "/etc/passwd", mtime: t0},
		{domain: "AppDomain-com.example.notes", rel: "Documents/a/b/note.txt", kind: KindFile, content: bytes.Repeat([]byte{1, 2, 3}, 40000), mtime: t0},
	}
}

func names(t *testing.T, b *Backup, f Filter) []string {
	t.Helper()
	var out []string
	for e, err := range b.Files(context.Background(), f) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Name())
	}
	return out
}

func TestFilesFilters(t *testing.T) {
	b := open(t, makeBackup(t, "", sampleFiles()), "")
	cases := []struct {
		name   string
		filter Filter
		want   []string
	}{
		{"domain", Filter{Domain: "HomeDomain"}, []string{"HomeDomain/Library/Preferences/com.apple.x.plist", "HomeDomain/Library/empty", "HomeDomain/Library/link"}},
		{"glob with **", Filter{Globs: []string{"Media/DCIM/**"}}, []string{
			"CameraRollDomain/Media/DCIM/100APPLE/IMG_0001.HEIC", "CameraRollDomain/Media/DCIM/100APPLE/IMG_0002.AAE", "CameraRollDomain/Media/DCIM/100APPLE/IMG_0002.MOV"}},
		{"** in the middle", Filter{Globs: []string{"Documents/**/*.txt"}}, []string{"AppDomain-com.example.notes/Documents/a/b/note.txt"}},
		{"leading **", Filter{Globs: []string{"**/*.plist"}}, []string{"HomeDomain/Library/Preferences/com.apple.x.plist"}},
		{"* stays in one element", Filter{Globs: []string{"Library/*"}}, []string{"HomeDomain/Library/empty", "HomeDomain/Library/link"}},
		{"two globs", Filter{Globs: []string{"Media", "Library/empty"}}, []string{"CameraRollDomain/Media", "HomeDomain/Library/empty"}},
		{"photos", Filter{Photos: true}, []string{"CameraRollDomain/Media/DCIM/100APPLE/IMG_0001.HEIC", "CameraRollDomain/Media/DCIM/100APPLE/IMG_0002.MOV"}},
		{"domain and glob", Filter{Domain: "CameraRollDomain", Globs: []string{"**/*.sqlite"}}, []string{"CameraRollDomain/Media/PhotoData/Photos.sqlite"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := names(t, b, c.filter); !slices.Equal(got, c.want) {
				t.Fatalf("got %q\nwant %q", got, c.want)
			}
		})
	}
	if err := (Filter{Globs: []string{"Media/[a"}}).Validate(); err == nil {
		t.Error("a malformed glob validates")
	}
}

func TestFilesEntries(t *testing.T) {
	for _, pw := range []string{"", "pw"} {
		b := open(t, makeBackup(t, pw, sampleFiles()), pw)
		if b.Encrypted() != (pw != "") || b.ProductVersion() != "17.5" {
			t.Fatalf("Encrypted %v, version %q", b.Encrypted(), b.ProductVersion())
		}
		want := map[string]testFile{}
		for _, f := range sampleFiles() {
			want[f.domain+"/"+f.rel] = f
		}
		n := 0
		for e, err := range b.Files(context.Background(), Filter{}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			f := want[e.Name()]
			if e.Kind != f.kind || e.Size != int64(len(f.content)) || !e.ModTime.Equal(f.mtime) || e.FileID != f.id() || e.Target != f.target || e.Problem != "" {
				t.Errorf("%s: %+v, want %+v", e.Name(), e, f)
			}
		}
		if n != len(want) {
			t.Fatalf("%d entries, want %d", n, len(want))
		}
	}
}

// extractAll extracts into a fresh directory inside a parent of its own,
// so a test can show nothing was written beside it.
func extractAll(t *testing.T, b *Backup, opt ExtractOptions) (string, Summary) {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "out")
	sum, err := Extract(context.Background(), b, dest, opt)
	if err != nil {
		t.Fatal(err)
	}
	return dest, sum
}

func TestExtract(t *testing.T) {
	for _, pw := range []string{"", "pässwörd"} {
		t.Run(map[bool]string{true: "encrypted", false: "plain"}[pw != ""], func(t *testing.T) {
			b := open(t, makeBackup(t, pw, sampleFiles()), pw)
			var last Progress
			calls := 0
			dest, sum := extractAll(t, b, ExtractOptions{Progress: func(p Progress) { last = p; calls++ }})
			var wantFiles int
			var wantBytes int64
			for _, f := range sampleFiles() {
				p := filepath.Join(dest, f.domain, filepath.FromSlash(f.rel))
				fi, err := os.Lstat(p)
				switch f.kind {
				case KindFile:
					wantFiles++
					wantBytes += int64(len(f.content))
					got, rerr := os.ReadFile(p)
					if rerr != nil || !bytes.Equal(got, f.content) {
						t.Fatalf("%s: content differs (%d bytes, %v)", p, len(got), rerr)
					}
					if !fi.ModTime().Equal(f.mtime) {
						t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), f.mtime)
					}
				case KindSymlink:
					if err == nil {
						t.Errorf("symlink %s was extracted", p)
					}
				}
			}
			if sum.Files != wantFiles || sum.Bytes != wantBytes || len(sum.Failed) != 0 || len(sum.Skipped) != 1 {
				t.Fatalf("summary %+v, want %d files %d bytes and the symlink skipped", sum, wantFiles, wantBytes)
			}
			if last.Files != wantFiles || last.TotalFiles != wantFiles || last.Bytes != wantBytes || last.TotalBytes != wantBytes || calls < wantFiles {
				t.Fatalf("last progress %+v after %d calls", last, calls)
			}
			// Again without overwrite: every file is skipped, none changed.
			marker := filepath.Join(dest, "HomeDomain", "Library", "empty")
			os.WriteFile(marker, []byte("mine"), 0o644)
			sum, err := Extract(context.Background(), b, dest, ExtractOptions{})
			if err != nil || sum.Files != 0 || len(sum.Skipped) != wantFiles+1 {
				t.Fatalf("second extract: %+v, %v", sum, err)
			}
			if got, _ := os.ReadFile(marker); string(got) != "mine" {
				t.Fatalf("an existing file was overwritten: %q", got)
			}
			sum, err = Extract(context.Background(), b, dest, ExtractOptions{Overwrite: true})
			if err != nil || sum.Files != wantFiles {
				t.Fatalf("extract with overwrite: %+v, %v", sum, err)
			}
			if got, _ := os.ReadFile(marker); len(got) != 0 {
				t.Fatalf("overwrite left %q", got)
			}
			if left := tempLeft(dest); left != nil {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
}

func tempLeft(dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.Contains(fi.Name(), "backupd-extract-") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestExtractHostileNames(t *testing.T) {
	good := testFile{domain: "HomeDomain", rel: "Documents/good.txt", kind: KindFile, content: []byte("good"), mtime: t0}
	hostile := []testFile{
		{domain: "HomeDomain", rel: "../../../escape-dotdot", kind: KindFile, content: []byte("x"), mtime: t0},
		{domain: "HomeDomain", rel: "Documents/../../escape-mid", kind: KindFile, content: []byte("x"), mtime: t0},
		{domain: "HomeDomain", rel: "/tmp/escape-absolute", kind: KindFile, content: []byte("x"), mtime: t0},
		{domain: "..", rel: "escape-domain", kind: KindFile, content: []byte("x"), mtime: t0},
		{domain: "Home/../..", rel: "escape-domain-sep", kind: KindFile, content: []byte("x"), mtime: t0},
		{domain: "HomeDomain", rel: "nul\x00name", kind: KindFile, content: []byte("x"), mtime: t0},
		{domain: "HomeDomain", rel: strings.Repeat("a", 300), kind: KindFile, content: []byte("x"), mtime: t0},
		{domain: "HomeDomain", rel: strings.Repeat("a/", 2100) + "x", kind: KindFile, content: []byte("x"), mtime: t0},
		{domain: "HomeDomain", rel: "", kind: KindFile, content: []byte("x"), mtime: t0},
		{domain: "", rel: "no-domain", kind: KindFile, content: []byte("x"), mtime: t0},
	}
	// A fileID that names a path outside the backup's xx/ directories.
	badID := testFile{domain: "HomeDomain", rel: "Documents/bad-id", kind: KindFile, content: []byte("x"), mtime: t0, fileID: "../../Manifest.plist"}
	for _, pw := range []string{"", "pw"} {
		t.Run(map[bool]string{true: "encrypted", false: "plain"}[pw != ""], func(t *testing.T) {
			files := append([]testFile{good, badID}, hostile...)
			b := open(t, makeBackup(t, pw, files), pw)
			parent := t.TempDir()
			dest := filepath.Join(parent, "out")
			sum, err := Extract(context.Background(), b, dest, ExtractOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Files != 1 || len(sum.Skipped) != len(hostile) || len(sum.Failed) != 1 {
				t.Fatalf("summary: %d files, skipped %v, failed %v", sum.Files, sum.Skipped, sum.Failed)
			}
			if sum.Failed[0].Name != "HomeDomain/Documents/bad-id" {
				t.Fatalf("failed %v", sum.Failed[0])
			}
			for _, s := range sum.Skipped {
				if s.Reason == "" {
					t.Errorf("skipped %q without a reason", s.Name)
				}
			}
			// Nothing but the good file anywhere under the parent, and no
			// escape files in the usual targets.
			got := treeFiles(t, parent)
			want := map[string]int64{filepath.Join(dest, "HomeDomain", "Documents", "good.txt"): 4}
			if len(got) != 1 || got[filepath.Join(dest, "HomeDomain", "Documents", "good.txt")] != 4 {
				t.Fatalf("files written: %v, want %v", got, want)
			}
			for _, p := range []string{"/tmp/escape-absolute", filepath.Join(filepath.Dir(parent), "escape-dotdot")} {
				if _, err := os.Lstat(p); err == nil {
					t.Fatalf("%s was written", p)
				}
			}
		})
	}
}

func TestWrongPasswordWritesNothing(t *testing.T) {
	dir := makeBackup(t, "right", sampleFiles())
	tmp := t.TempDir()
	_, err := Open(context.Background(), dir, Options{Password: []byte("wrong"), TempDir: tmp})
	if !errors.Is(err, ErrWrongPassword) || cause.Of(err) != cause.WrongBackupPassword {
		t.Fatalf("err %v (cause %s), want wrong_backup_password", err, cause.Of(err))
	}
	if strings.Contains(err.Error(), "wrong\"") || strings.Contains(err.Error(), "right") {
		t.Fatalf("the error shows a password: %v", err)
	}
	if got := treeFiles(t, tmp); len(got) != 0 {
		t.Fatalf("written with a wrong password: %v", got)
	}
	if _, err := Open(context.Background(), dir, Options{}); !errors.Is(err, ErrPasswordNeeded) {
		t.Fatalf("no password: %v", err)
	}
}

func TestDecryptedManifestIsPrivateAndRemoved(t *testing.T) {
	tmp := t.TempDir()
	b, err := Open(context.Background(), makeBackup(t, "pw", sampleFiles()), Options{Password: []byte("pw"), TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(tmp)
	if len(entries) != 1 {
		t.Fatalf("temporary dir holds %v", entries)
	}
	fi, _ := entries[0].Info()
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("decrypted Manifest.db has mode %v", fi.Mode())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("left after Close: %v", entries)
	}
}

func idOf(domain, rel string) string {
	sum := sha1.Sum([]byte(domain + "-" + rel))
	return hex.EncodeToString(sum[:])
}

// damage changes a stored file of a backup.
func damage(t *testing.T, dir, domain, rel string, f func([]byte) []byte) {
	t.Helper()
	id := idOf(domain, rel)
	p := filepath.Join(dir, id[:2], id)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedFilesAreNamed(t *testing.T) {
	const home = "HomeDomain"
	files := []testFile{
		{domain: home, rel: "ok-1", kind: KindFile, content: bytes.Repeat([]byte("a"), 1000), mtime: t0},
		{domain: home, rel: "truncated", kind: KindFile, content: bytes.Repeat([]byte("b"), 1000), mtime: t0},
		{domain: home, rel: "damaged-end", kind: KindFile, content: bytes.Repeat([]byte("c"), 1000), mtime: t0},
		{domain: home, rel: "missing", kind: KindFile, content: bytes.Repeat([]byte("d"), 1000), mtime: t0},
		{domain: home, rel: "grown", kind: KindFile, content: bytes.Repeat([]byte("e"), 1000), mtime: t0},
		{domain: home, rel: "ok-2", kind: KindFile, content: bytes.Repeat([]byte("f"), 1000), mtime: t0},
	}
	for _, pw := range []string{"", "pw"} {
		t.Run(map[bool]string{true: "encrypted", false: "plain"}[pw != ""], func(t *testing.T) {
			dir := makeBackup(t, pw, files)
			damage(t, dir, home, "truncated", func(b []byte) []byte { return b[:len(b)-16] })
			damage(t, dir, home, "grown", func(b []byte) []byte { return append(b, make([]byte, 16)...) })
			damage(t, dir, home, "damaged-end", func(b []byte) []byte { b[len(b)-1] ^= 0x55; return b })
			id := idOf(home, "missing")
			os.Remove(filepath.Join(dir, id[:2], id))
			b := open(t, dir, pw)
			dest, sum := extractAll(t, b, ExtractOptions{})
			wantFailed := []string{home + "/grown", home + "/missing", home + "/truncated"}
			if pw != "" {
				// Plain content has no check beyond its length.
				wantFailed = []string{home + "/damaged-end", home + "/grown", home + "/missing", home + "/truncated"}
			}
			var failed []string
			for _, f := range sum.Failed {
				failed = append(failed, f.Name)
				if !errors.Is(f, ErrDamaged) || !strings.Contains(f.Error(), f.Name) {
					t.Errorf("failure %v: not ErrDamaged or does not name the file", f)
				}
			}
			slices.Sort(failed)
			if !slices.Equal(failed, wantFailed) {
				t.Fatalf("failed %q, want %q", failed, wantFailed)
			}
			if sum.Files != len(files)-len(wantFailed) {
				t.Fatalf("%d files extracted, want %d", sum.Files, len(files)-len(wantFailed))
			}
			for _, name := range wantFailed {
				if _, err := os.Lstat(filepath.Join(dest, filepath.FromSlash(name))); err == nil {
					t.Errorf("%s was written", name)
				}
			}
			if left := tempLeft(dest); left != nil {
				t.Fatalf("temporary files left: %v", left)
			}
			// Check finds the same ones without reading whole files.
			var bad []string
			for e, err := range b.Files(context.Background(), Filter{}) {
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Check(e); err != nil {
					bad = append(bad, e.Name())
				}
			}
			if !slices.Equal(bad, wantFailed) {
				t.Fatalf("Check flags %q, want %q", bad, wantFailed)
			}
		})
	}
}

func TestOpenRefusesHostileManifest(t *testing.T) {
	dir := makeBackup(t, "", nil)
	// Replace Manifest.db with one whose Files is a view.
	db := filepath.Join(t.TempDir(), "m.db")
	mk := mustExec(t, db, `CREATE TABLE t (fileID, domain, relativePath, flags, file); CREATE VIEW Files AS SELECT * FROM t;`)
	os.Rename(mk, filepath.Join(dir, "Manifest.db"))
	if _, err := Open(context.Background(), dir, Options{}); err == nil || !strings.Contains(err.Error(), "not a table") {
		t.Fatalf("Files as a view: %v", err)
	}
	// A symbolic link in place of Manifest.db.
	os.Remove(filepath.Join(dir, "Manifest.db"))
	os.Symlink(db, filepath.Join(dir, "Manifest.db"))
	if _, err := Open(context.Background(), dir, Options{}); err == nil {
		t.Fatal("a symlinked Manifest.db opened")
	}
	if _, err := Open(context.Background(), t.TempDir(), Options{}); err == nil {
		t.Fatal("a directory without Manifest.plist opened")
	}
}

// TestDestDirsPastTheirBound: past maxOpenDirs directories the cache
// starts again, and every handle it gives still names its own directory.
func TestDestDirsPastTheirBound(t *testing.T) {
	dest := t.TempDir()
	root, err := os.OpenRoot(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	c := destDirs{root: root, open: map[string]*os.Root{}}
	defer c.close()
	n := 2*maxOpenDirs + 3
	for i := range n {
		// Twice each, the second time from the cache or after a reset.
		for range 2 {
			d, err := c.get(filepath.Join("D", fmt.Sprint(i%7), fmt.Sprint(i)))
			if err != nil {
				t.Fatal(err)
			}
			if err := d.WriteFile(fmt.Sprint(i), []byte(fmt.Sprint(i)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if len(c.open) > maxOpenDirs {
			t.Fatalf("%d directories open, bound %d", len(c.open), maxOpenDirs)
		}
	}
	for i := range n {
		p := filepath.Join(dest, "D", fmt.Sprint(i%7), fmt.Sprint(i), fmt.Sprint(i))
		if got, err := os.ReadFile(p); err != nil || string(got) != fmt.Sprint(i) {
			t.Fatalf("%s: %q, %v", p, got, err)
		}
	}
}

// TestExtractSymlinksStayInside: a symbolic link that leads out of the
// destination (planted in it) or out of the backup (an xx/ directory)
// fails that file; nothing is written or read outside, and the other
// files are extracted.
func TestExtractSymlinksStayInside(t *testing.T) {
	inside := testFile{domain: "HomeDomain", rel: "Documents/inside.txt", kind: KindFile, content: []byte("inside"), mtime: t0}
	linked := testFile{domain: "MediaDomain", rel: "Library/linked.txt", kind: KindFile, content: []byte("linked"), mtime: t0}
	for _, c := range []struct {
		name  string
		plant func(t *testing.T, backup, dest, outside string)
	}{
		{"destination directory", func(t *testing.T, _, dest, outside string) {
			if err := os.MkdirAll(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(dest, "MediaDomain")); err != nil {
				t.Fatal(err)
			}
		}},
		{"backup directory", func(t *testing.T, backup, _, outside string) {
			xx := filepath.Join(backup, linked.id()[:2])
			if err := os.Rename(xx, filepath.Join(outside, "xx")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(outside, "xx"), xx); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if inside.id()[:2] == linked.id()[:2] {
				t.Fatal("the two files share their xx/ directory")
			}
			backup := makeBackup(t, "", []testFile{inside, linked})
			b := open(t, backup, "")
			dest, outside := filepath.Join(t.TempDir(), "out"), t.TempDir()
			c.plant(t, backup, dest, outside)
			before := treeFiles(t, outside)
			sum, err := Extract(context.Background(), b, dest, ExtractOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Files != 1 || len(sum.Failed) != 1 || sum.Failed[0].Name != "MediaDomain/Library/linked.txt" {
				t.Fatalf("summary: %d files, failed %v", sum.Files, sum.Failed)
			}
			if got, err := os.ReadFile(filepath.Join(dest, "HomeDomain", "Documents", "inside.txt")); err != nil || string(got) != "inside" {
				t.Fatalf("inside.txt: %q, %v", got, err)
			}
			if after := treeFiles(t, outside); !maps.Equal(before, after) {
				t.Fatalf("outside changed: %v, was %v", after, before)
			}
		})
	}
}
