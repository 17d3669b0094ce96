package contents

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/fileset"
	"github.com/backupd/backupd/sim/simtest"
)

// idevicebackup2 runs Debian's tool against the simulator.
func idevicebackup2(t testing.TB, s *sim.Sim, args ...string) {
	t.Helper()
	path := simtest.RequireTool(t, "idevicebackup2")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(cmd.Environ(), "USBMUXD_SOCKET_ADDRESS="+s.Address())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Backup Successful.") {
		t.Fatalf("idevicebackup2 %v: %v\n%s", args, err, out)
	}
}

// checkExtracted checks that dest holds exactly the device's present
// files, by content hash, at <Domain>/<relativePath>, with their times.
func checkExtracted(t testing.TB, dest string, files []fileset.File, sum Summary) {
	t.Helper()
	n := 0
	var bytes int64
	for _, f := range files {
		if f.Deleted {
			continue
		}
		n++
		bytes += f.Size
		p := filepath.Join(dest, f.Domain, filepath.FromSlash(f.RelativePath))
		fh, err := os.Open(p)
		if err != nil {
			t.Fatalf("%s/%s not extracted: %v", f.Domain, f.RelativePath, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, fh)
		fi, _ := fh.Stat()
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		if [32]byte(h.Sum(nil)) != fileset.Hash(f) {
			t.Fatalf("%s: content differs from the device's", p)
		}
		if !fi.ModTime().Equal(f.ModTime) {
			t.Fatalf("%s: mtime %v, device has %v", p, fi.ModTime(), f.ModTime)
		}
	}
	if sum.Files != n || sum.Bytes != bytes || len(sum.Failed) != 0 || len(sum.Skipped) != 0 {
		t.Fatalf("summary %d files %d bytes, skipped %v, failed %v; device has %d files, %d bytes", sum.Files, sum.Bytes, sum.Skipped, sum.Failed, n, bytes)
	}
	if got := len(treeFiles(t, dest)); got != n {
		t.Fatalf("%d files in %s, device has %d", got, dest, n)
	}
}

// TestExtractSimulatorBackup: Debian's idevicebackup2 backs up the
// simulated iPhone, plain and encrypted, full and then incremental after
// changes; extracting every file gives the device's content and times.
func TestExtractSimulatorBackup(t *testing.T) {
	for _, pw := range []string{"", "s3cret"} {
		t.Run(map[bool]string{true: "encrypted", false: "plain"}[pw != ""], func(t *testing.T) {
			s, devs := simtest.StartT(t, sim.DeviceConfig{BackupPassword: pw,
				Files: sim.FileSpec{Seed: 5, Count: 120, MinSize: 0, MaxSize: 300 << 10}})
			d := devs[0]
			dir := t.TempDir()
			idevicebackup2(t, s, "-u", d.UDID(), "backup", "--full", dir)
			for round := 0; round < 2; round++ {
				b := open(t, filepath.Join(dir, d.UDID()), pw)
				if b.Encrypted() != (pw != "") {
					t.Fatalf("Encrypted() = %v", b.Encrypted())
				}
				dest, sum := extractAll(t, b, ExtractOptions{})
				checkExtracted(t, dest, d.Files(), sum)
				b.Close()
				if round == 0 {
					if d.Mutate(0.3) == 0 {
						t.Fatal("nothing mutated")
					}
					idevicebackup2(t, s, "-u", d.UDID(), "backup", dir)
					if st := d.BackupStats(); st.LastFull {
						t.Fatal("second backup was full; the incremental path is not tested")
					}
				}
			}
		})
	}
}
