package fileset

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

func mustNew(t testing.TB, spec Spec) *Set {
	t.Helper()
	s, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDeterministic(t *testing.T) {
	spec := Spec{Seed: 7, Files: 200, MinSize: 0, MaxSize: 100 << 10}
	a, b := mustNew(t, spec), mustNew(t, spec)
	other := mustNew(t, Spec{Seed: 8, Files: 200, MinSize: 0, MaxSize: 100 << 10})
	sameContent := 0
	for i := 0; i < a.Len(); i++ {
		fa, fb := a.File(i), b.File(i)
		if fa != fb {
			t.Fatalf("file %d differs between equal specs: %+v vs %+v", i, fa, fb)
		}
		if a.Hash(i) != b.Hash(i) {
			t.Fatalf("content %d differs between equal specs", i)
		}
		if other.File(i).Size > 0 && a.Hash(i) == other.Hash(i) {
			sameContent++
		}
	}
	if sameContent > 0 {
		t.Fatalf("%d files have the same content under another seed", sameContent)
	}
}

// TestGolden pins generated values, so that a change to the generator (and
// with it every recorded test expectation) is a deliberate one.
func TestGolden(t *testing.T) {
	s := mustNew(t, Spec{Seed: 1, Files: 3, MinSize: 1, MaxSize: 1 << 20})
	f := s.File(0)
	if f.Domain != "HomeDomain" || f.RelativePath != "Library/Preferences/d000/com.example.pref00000.plist" {
		t.Fatalf("file 0 = %s %s", f.Domain, f.RelativePath)
	}
	first, err := io.ReadAll(io.LimitReader(s.Open(0), 8))
	if err != nil {
		t.Fatal(err)
	}
	const wantSize, wantFirst = int64(270), "e3a1163cda73ca40"
	if f.Size != wantSize || hex.EncodeToString(first) != wantFirst {
		t.Fatalf("file 0: size %d first bytes %x; want %d %s", f.Size, first, wantSize, wantFirst)
	}
}

func TestFileID(t *testing.T) {
	sum := sha1.Sum([]byte("HomeDomain-Library/Preferences/com.apple.x.plist"))
	want := hex.EncodeToString(sum[:])
	if got := FileID("HomeDomain", "Library/Preferences/com.apple.x.plist"); got != want {
		t.Fatalf("FileID = %s, want %s", got, want)
	}
	s := mustNew(t, Spec{Seed: 1, Files: 50})
	for _, f := range append(s.Files(), s.Dirs()...) {
		if f.FileID != FileID(f.Domain, f.RelativePath) {
			t.Fatalf("%+v: wrong FileID", f)
		}
		if f.BackupPath() != f.FileID[:2]+"/"+f.FileID {
			t.Fatalf("backup path %s", f.BackupPath())
		}
	}
}

func TestSizes(t *testing.T) {
	tests := []struct {
		min, max int64
	}{
		{0, 0}, {5, 5}, {0, 1}, {1, 1 << 30}, {1000, 1001}, {100, 1 << 20},
	}
	for _, tt := range tests {
		s := mustNew(t, Spec{Seed: 3, Files: 2000, MinSize: tt.min, MaxSize: tt.max})
		if tt.max == 0 {
			tt.max = 1 << 20
		}
		small, large := 0, 0
		for _, f := range s.Files() {
			if f.Size < tt.min || f.Size > tt.max {
				t.Fatalf("size %d outside %d..%d", f.Size, tt.min, tt.max)
			}
			if tt.max <= 1<<20 {
				n, err := io.Copy(io.Discard, f.Open())
				if err != nil || n != f.Size {
					t.Fatalf("reader yields %d bytes for size %d: %v", n, f.Size, err)
				}
			}
			if f.Size < 1<<10 {
				small++
			}
			if f.Size >= 1<<20 {
				large++
			}
		}
		// Log-uniform over 1..1 GiB: about a third below 1 KiB, about a
		// third at 1 MiB or more.
		if tt.min == 1 && tt.max == 1<<30 && (small < 400 || large < 400) {
			t.Errorf("not log-uniform: %d small, %d large of 2000", small, large)
		}
	}
	if _, err := New(Spec{MinSize: 10, MaxSize: 5}); err == nil {
		t.Error("accepted MinSize > MaxSize")
	}
	if _, err := New(Spec{Files: -1}); err == nil {
		t.Error("accepted a negative file count")
	}
}

// TestReaderChunking checks that the content does not depend on how it is
// read: any read sizes and offsets give the same bytes.
func TestReaderChunking(t *testing.T) {
	s := mustNew(t, Spec{Seed: 5, Files: 20, MinSize: 0, MaxSize: 5000})
	for i := 0; i < s.Len(); i++ {
		whole, err := io.ReadAll(s.Open(i))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(whole)) != s.File(i).Size {
			t.Fatalf("file %d: %d bytes, size %d", i, len(whole), s.File(i).Size)
		}
		for _, step := range []int{1, 3, 7, 8, 9, 13, 4096} {
			r := s.Open(i)
			var got bytes.Buffer
			buf := make([]byte, step)
			for {
				n, err := r.Read(buf)
				got.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got.Bytes(), whole) {
				t.Fatalf("file %d read in steps of %d differs", i, step)
			}
		}
		if err := iotest.TestReader(s.Open(i), whole); err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
	}
}

func TestLayout(t *testing.T) {
	s := mustNew(t, Spec{Seed: 1, Files: 500, FilesPerDir: 10})
	ids := map[string]bool{}
	dirs := map[string]bool{}
	for _, d := range s.Dirs() {
		if !d.IsDir() || d.Mode != ModeDir {
			t.Fatalf("directory entry %+v", d)
		}
		dirs[d.Domain+"-"+d.RelativePath] = true
		ids[d.FileID] = true
	}
	for _, f := range s.Files() {
		if f.IsDir() || f.Mode != ModeFile {
			t.Fatalf("file entry %+v", f)
		}
		if ids[f.FileID] {
			t.Fatalf("duplicate file ID %s", f.FileID)
		}
		ids[f.FileID] = true
		// Every parent directory of every file is listed.
		for d := parent(f.RelativePath); d != ""; d = parent(d) {
			if !dirs[f.Domain+"-"+d] {
				t.Fatalf("%s-%s: parent %s not listed", f.Domain, f.RelativePath, d)
			}
		}
		if strings.HasPrefix(f.RelativePath, "/") || strings.Contains(f.RelativePath, "..") {
			t.Fatalf("odd path %s", f.RelativePath)
		}
	}
}

func TestMutate(t *testing.T) {
	s := mustNew(t, Spec{Seed: 9, Files: 1000, MaxSize: 4096})
	before := s.Files()
	hashes := make([][32]byte, len(before))
	for i := range before {
		hashes[i] = s.Hash(i)
	}
	changed := s.Mutate(0.01, 42)
	if len(changed) != 10 {
		t.Fatalf("mutated %d files, want 10", len(changed))
	}
	if !slices.IsSorted(changed) {
		t.Fatalf("not sorted: %v", changed)
	}
	// Same mutation on an identical set picks the same files.
	twin := mustNew(t, Spec{Seed: 9, Files: 1000, MaxSize: 4096})
	if got := twin.Mutate(0.01, 42); !slices.Equal(got, changed) {
		t.Fatalf("mutation not deterministic: %v vs %v", got, changed)
	}
	after := s.Files()
	for i := range after {
		mutated := slices.Contains(changed, i)
		if mutated != (after[i].Generation == 2) {
			t.Fatalf("file %d: generation %d, mutated %v", i, after[i].Generation, mutated)
		}
		if mutated == (s.Hash(i) == hashes[i]) && after[i].Size > 0 {
			t.Fatalf("file %d: content changed=%v, mutated=%v", i, s.Hash(i) != hashes[i], mutated)
		}
		if mutated && !after[i].ModTime.After(before[i].ModTime) {
			t.Fatalf("file %d: modification time did not advance", i)
		}
	}
	// A reader opened on the old version keeps yielding the old bytes.
	old := before[changed[0]]
	if Hash(old) != hashes[changed[0]] {
		t.Fatal("old version's content changed")
	}
	if n := len(s.Mutate(0, 1)); n != 0 {
		t.Fatalf("share 0 mutated %d", n)
	}
	if n := len(s.Mutate(1, 1)); n != 1000 {
		t.Fatalf("share 1 mutated %d", n)
	}
}

func TestDelete(t *testing.T) {
	s := mustNew(t, Spec{Seed: 9, Files: 100, MaxSize: 100})
	total := s.TotalSize()
	gone := s.Delete(0.1, 1)
	if len(gone) != 10 {
		t.Fatalf("deleted %d", len(gone))
	}
	var goneSize int64
	for _, i := range gone {
		f := s.File(i)
		if !f.Deleted {
			t.Fatalf("file %d not marked deleted", i)
		}
		goneSize += f.Size
	}
	if s.TotalSize() != total-goneSize {
		t.Fatalf("total %d, want %d", s.TotalSize(), total-goneSize)
	}
	// Later picks only consider present files.
	for _, i := range s.Mutate(1, 2) {
		if slices.Contains(gone, i) {
			t.Fatalf("mutated deleted file %d", i)
		}
	}
	if n := len(s.Delete(1, 3)); n != 90 {
		t.Fatalf("deleted %d of the remaining 90", n)
	}
}

func TestConcurrentMutate(t *testing.T) {
	s := mustNew(t, Spec{Seed: 1, Files: 300, MaxSize: 1000})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				s.Mutate(0.05, int64(g*100+i))
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				for _, f := range s.Files() {
					if _, err := io.Copy(io.Discard, f.Open()); err != nil {
						t.Error(err)
						return
					}
				}
				_ = s.TotalSize()
			}
		}()
	}
	wg.Wait()
}

func BenchmarkContent(b *testing.B) {
	s := mustNew(b, Spec{Seed: 1, Files: 1, MinSize: 1 << 30, MaxSize: 1 << 30})
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	r := s.Open(0).(*Reader)
	for b.Loop() {
		if _, err := io.ReadFull(r, buf); err != nil {
			r = s.Open(0).(*Reader)
		}
	}
}
