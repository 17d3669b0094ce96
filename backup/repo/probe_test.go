package repo

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/backupd/backupd/cause"
)

func TestProbeHardLinks(t *testing.T) {
	t.Run("a directory with hard links", func(t *testing.T) {
		dir := t.TempDir()
		ok, err := ProbeHardLinks(dir)
		if err != nil || !ok {
			t.Fatalf("ProbeHardLinks = %v, %v; want true, nil", ok, err)
		}
		// The probe leaves nothing behind but the .backupd directory.
		left, err := os.ReadDir(filepath.Join(dir, ".backupd"))
		if err != nil || len(left) != 0 {
			t.Errorf(".backupd after the probe: %v, %v; want empty", left, err)
		}
	})
	t.Run("a missing directory", func(t *testing.T) {
		_, err := ProbeHardLinks(filepath.Join(t.TempDir(), "gone"))
		if err == nil {
			t.Fatal("ProbeHardLinks of a missing directory succeeded")
		}
	})
	t.Run("a read-only directory", func(t *testing.T) {
		if runtime.GOOS == "windows" || os.Geteuid() == 0 {
			t.Skip("root writes anywhere; Windows has no mode bits for this")
		}
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		_, err := ProbeHardLinks(dir)
		if cause.Of(err) != cause.HostNotWritable {
			t.Fatalf("ProbeHardLinks of a read-only directory: %v (cause %q), want host_not_writable", err, cause.Of(err))
		}
	})
}
