package repo_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/backup/repo"
)

const benchFiles = 20000

// sizedFiles returns n files of size bytes each.
func sizedFiles(n, size int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		head := fmt.Sprintf("file %d\n", i)
		m[fmt.Sprintf("Media/f%05d", i)] = head + strings.Repeat("x", max(size-len(head), 0))
	}
	return m
}

// BenchmarkBegin measures the clone of a 20,000-file backup (4 KiB each),
// by hard link and by copy.
func BenchmarkBegin(b *testing.B) {
	for _, bc := range []struct {
		name  string
		clone repo.CloneMode
	}{{"hardlink", repo.CloneAuto}, {"copy", repo.CloneCopy}} {
		b.Run(bc.name, func(b *testing.B) {
			r := openRepo(b, b.TempDir(), repo.Options{Clone: bc.clone})
			backup(b, r, testUDID, fakeBackup{Files: sizedFiles(benchFiles, 4096)})
			b.ResetTimer()
			for range b.N {
				s, err := r.Begin(context.Background(), testUDID)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				st := s.CloneStats()
				if bc.clone == repo.CloneCopy && st.Copied != st.Files || st.Files < benchFiles {
					b.Fatalf("stats %+v", st)
				}
				if err := s.Abort(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(benchFiles*b.N)/b.Elapsed().Seconds(), "files/s")
		})
	}
}

// BenchmarkCommit measures an incremental commit of a 20,000-file backup
// cloned by hard link with 1% of its files changed: verify, sync, swap,
// retire and prune (KeepLast 1, so every commit also deletes a version).
func BenchmarkCommit(b *testing.B) {
	r := openRepo(b, b.TempDir(), repo.Options{KeepLast: 1})
	f := sizedFiles(benchFiles, 4096)
	backup(b, r, testUDID, fakeBackup{Files: f})
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for k := range benchFiles / 100 {
			f[fmt.Sprintf("Media/f%05d", k*100)] = fmt.Sprintf("changed %d %d", i, k)
		}
		s, err := r.Begin(context.Background(), testUDID)
		if err != nil {
			b.Fatal(err)
		}
		writeBackup(b, filepath.Join(s.Dir(), testUDID), fakeBackup{Files: f, Tag: fmt.Sprint(i)})
		b.StartTimer()
		if _, err := s.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchFiles*b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkVerify measures Verify of a 20,000-file backup.
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	writeBackup(b, dir, fakeBackup{Files: sizedFiles(benchFiles, 64)})
	r := openRepo(b, b.TempDir(), repo.Options{})
	b.ResetTimer()
	for range b.N {
		rep, err := r.Verify(context.Background(), dir)
		if err != nil || rep.SizesChecked != benchFiles {
			b.Fatalf("%v %+v", err, rep)
		}
	}
	b.ReportMetric(float64(benchFiles*b.N)/b.Elapsed().Seconds(), "files/s")
}
