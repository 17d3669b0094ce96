package contents

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// benchFiles is a phone of about 100 MB; benchSmallFiles one of 5 000
// small files, where the cost per file shows.
var (
	benchFiles      = sim.FileSpec{Seed: 11, Count: 200, MinSize: 64 << 10, MaxSize: 2 << 20}
	benchSmallFiles = sim.FileSpec{Seed: 11, Count: 5000, MinSize: 1 << 10, MaxSize: 16 << 10}
)

// benchBackup has Debian's idevicebackup2 back up a simulated iPhone
// with files and returns the backup's directory and its content bytes.
func benchBackup(b *testing.B, password string, files sim.FileSpec) (string, int64) {
	b.Helper()
	s, devs := simtest.StartT(b, sim.DeviceConfig{BackupPassword: password, Files: files})
	d := devs[0]
	dir := b.TempDir()
	idevicebackup2(b, s, "-u", d.UDID(), "backup", "--full", dir)
	var total int64
	for _, f := range d.Files() {
		total += f.Size
	}
	return filepath.Join(dir, d.UDID()), total
}

// BenchmarkExtract extracts every file of a plain and of an encrypted
// backup, and of a plain one of small files; MB/s is of plain content
// written.
func BenchmarkExtract(b *testing.B) {
	for _, c := range []struct {
		name  string
		pw    string
		files sim.FileSpec
	}{
		{"plain", "", benchFiles},
		{"encrypted", "s3cret", benchFiles},
		{"small", "", benchSmallFiles},
	} {
		b.Run(c.name, func(b *testing.B) {
			pw := c.pw
			dir, total := benchBackup(b, pw, c.files)
			bk := open(b, dir, pw)
			b.SetBytes(total)
			for b.Loop() {
				dest := filepath.Join(b.TempDir(), "out")
				sum, err := Extract(context.Background(), bk, dest, ExtractOptions{})
				if err != nil || sum.Bytes != total {
					b.Fatalf("extract: %+v, %v", sum, err)
				}
				b.StopTimer()
				os.RemoveAll(dest)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkCopyTree is `cp -r` of the same plain backup on the same
// disk, the yardstick for BenchmarkExtract.
func BenchmarkCopyTree(b *testing.B) {
	dir, total := benchBackup(b, "", benchFiles)
	b.SetBytes(total)
	for b.Loop() {
		dest := filepath.Join(b.TempDir(), "copy")
		if out, err := exec.Command("cp", "-r", dir, dest).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		b.StopTimer()
		os.RemoveAll(dest)
		b.StartTimer()
	}
}
