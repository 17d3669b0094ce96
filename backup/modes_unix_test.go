//go:build unix

package backup

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/backupd/backupd/sim"
)

// TestPrivateModesWhateverUmask: backups hold a person's private data,
// so every file inside backup_dir is 0600 and every folder 0700 under any
// umask a service might start with, and a copy with cp -a or rsync stays
// private. A full backup, then an incremental one (its clone and the
// retired version), are checked. The umask is the process's, so this
// test is not parallel.
func TestPrivateModesWhateverUmask(t *testing.T) {
	for _, umask := range []int{0o000, 0o002, 0o022, 0o077} {
		t.Run(fmt.Sprintf("umask %04o", umask), func(t *testing.T) {
			old := syscall.Umask(umask)
			defer syscall.Umask(old)
			r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 40, MinSize: 1, MaxSize: 4 << 10}}, testOptions(t))
			r.mustBackup(Target{})
			r.dev.Mutate(0.2)
			r.mustBackup(Target{})
			if len(r.versions()) == 0 {
				t.Fatal("no retired version: the second backup did not make one")
			}
			checked := 0
			err := filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || p == r.dir {
					return err // backup_dir itself is the person's folder
				}
				fi, err := d.Info()
				if err != nil {
					return err
				}
				want := fs.FileMode(0o600)
				if d.IsDir() {
					want = 0o700
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
				}
				checked++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if checked < 80 {
				t.Errorf("only %d entries checked", checked)
			}
		})
	}
}
