package backup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/sim"
)

// The extract benchmarks put `backupd extract` in bench-compare's table:
// every file of the full backup of W1 and W2, out of the kept backup into
// a directory tree, against `cp -r` of the same backup directory on the
// same disk (no Debian tool extracts a backup without a phone:
// "idevicebackup2 unback" has the phone do it). The extract reads each
// file's domain and path from Manifest.db and writes it under
// DIR/<Domain>/<path> with its modification time; cp copies the backup's
// hashed names as they are. Both read the same bytes and write them once.

// benchExtract makes one full backup with the engine, then extracts all
// of it once per b.N with the built binary (scripts/bench-compare.sh
// builds it) and copies it with cp -r, alternating which goes first.
func benchExtract(b *testing.B, spec sim.FileSpec) {
	w := newWorkload(b, spec)
	bin := os.Getenv(benchDaemonEnv)
	if bin == "" {
		b.Skipf("set %s to a built backupd (scripts/bench-compare.sh does)", benchDaemonEnv)
	}
	dir := b.TempDir()
	_, res := w.engine(b, dir, true)
	udid := w.devs[0].UDID()
	r, err := repo.Open(dir, repo.Options{})
	if err != nil {
		b.Fatal(err)
	}
	latest, ok := r.Latest(udid)
	r.Close()
	if !ok {
		b.Fatalf("no backup of %s in %s", udid, dir)
	}
	conf := filepath.Join(b.TempDir(), "c.toml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "state_dir = %q\nbackup_dir = %q\n", b.TempDir(), dir), 0o600); err != nil {
		b.Fatal(err)
	}
	var ext, cp toolFigures
	rounds := 0
	for b.Loop() {
		rounds++
		out := b.TempDir()
		tools := []func(){
			func() {
				to := filepath.Join(out, "extract")
				ext.add(runMeasured(b, exec.Command(bin, "extract", udid, "--config", conf, "--to", to)))
				requireExtracted(b, to, spec.Count)
			},
			func() { cp.add(runMeasured(b, exec.Command("cp", "-r", latest, filepath.Join(out, "cp")))) },
		}
		for i := range tools {
			tools[(i+rounds)%len(tools)]()
		}
		discardTrees(spec, out)
	}
	files := int64(spec.Count)
	b.ReportMetric(float64(files), "files")
	b.ReportMetric(float64(res.Bytes)/(1<<20), "MiB")
	ext.report(b, "extract", res.Bytes, files)
	cp.report(b, "cp", res.Bytes, files)
	b.ReportMetric(ratio(&ext, &cp), "extract-ratio")
}

// requireExtracted checks that dir holds files regular files, so that a
// run that extracted nothing is not timed as a fast one.
func requireExtracted(b *testing.B, dir string, files int) {
	b.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil || n != files {
		b.Fatalf("extract wrote %d files of %d (%v)", n, files, err)
	}
}

// BenchmarkExtractW1: every file of the full backup of W1 (20 000 files
// of 1–64 KiB).
func BenchmarkExtractW1(b *testing.B) {
	benchExtract(b, sim.FileSpec{Count: 20000, MinSize: 1 << 10, MaxSize: 64 << 10})
}

// BenchmarkExtractW2: every file of the full backup of W2 (8 files of
// 256 MiB).
func BenchmarkExtractW2(b *testing.B) {
	benchExtract(b, sim.FileSpec{Count: 8, MinSize: 256 << 20, MaxSize: 256 << 20})
}
