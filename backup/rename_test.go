package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestMovesKeepCachedDirectoriesTrue moves files through the cached
// directories and then moves and replaces those directories: each later
// move must land where its path says, not in a directory a stale handle
// still names.
func TestMovesKeepCachedDirectoriesTrue(t *testing.T) {
	type mv struct{ src, dst string }
	tests := []struct {
		name  string
		dirs  []string
		files []string
		moves []mv
		want  []string // files after the moves
		gone  []string
	}{
		{"file between directories", []string{"S/ab", "ab"}, []string{"S/ab/f"},
			[]mv{{"S/ab/f", "ab/f"}}, []string{"ab/f"}, []string{"S/ab/f"}},
		{"directory moved after its file", []string{"S/ab", "ab", "cd"}, []string{"S/ab/f", "S/ab/g"},
			[]mv{{"S/ab/f", "ab/f"}, {"ab", "cd/ab"}, {"S/ab/g", "cd/ab/g"}},
			[]string{"cd/ab/f", "cd/ab/g"}, []string{"ab", "S/ab/g"}},
		{"directory recreated under the old name", []string{"S/ab", "ab", "cd"}, []string{"S/ab/f", "S/ab/g", "S/h"},
			[]mv{{"S/ab/f", "ab/f"}, {"ab", "cd/ab"}, {"S/ab", "ab"}, {"S/h", "ab/h"}},
			[]string{"cd/ab/f", "ab/g", "ab/h"}, []string{"S/ab"}},
		{"file replaces a file", []string{"S", "x"}, []string{"S/f", "x/f"},
			[]mv{{"S/f", "x/f"}}, []string{"x/f"}, []string{"S/f"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range tt.dirs {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			fs, err := openStagingFS(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			for _, m := range tt.moves {
				if err := fs.move(m.src, m.dst); err != nil {
					t.Fatalf("move %s %s: %v", m.src, m.dst, err)
				}
			}
			for _, f := range tt.want {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
			for _, f := range tt.gone {
				if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
					t.Errorf("%s is still there", f)
				}
			}
		})
	}
}

// BenchmarkMoveSnapshotFiles is the moves at the end of a full backup:
// Snapshot/xx/h → xx/h for every file.
func BenchmarkMoveSnapshotFiles(b *testing.B) {
	const n = 2000
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		var paths []string
		for i := range n {
			xx := fmt.Sprintf("%02x", i%256)
			for _, d := range []string{"Snapshot/" + xx, xx} {
				os.MkdirAll(filepath.Join(dir, d), 0o700)
			}
			p := fmt.Sprintf("%s/%040x", xx, i)
			os.WriteFile(filepath.Join(dir, "Snapshot", p), nil, 0o600)
			paths = append(paths, p)
		}
		fs, err := openStagingFS(dir)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, p := range paths {
			if err := fs.move("Snapshot/"+p, p); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		fs.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n)/1e3, "µs/move")
}
