//go:build unix

package daemon

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestListenUnixUnderUmaskZero: the socket is made 0600 whatever the
// umask the daemon was started with (issue #16); net.Listen alone made it
// 0777 under a umask of 0 until listenSocket's chmod. listenSocket then
// gives it 0660, and the process's umask is as it was.
func TestListenUnixUnderUmaskZero(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	ln, err := listenUnix(filepath.Join(dir, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(filepath.Join(dir, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("new socket mode %04o, want 0600", got)
	}
	if now := syscall.Umask(0); now != 0 {
		t.Errorf("umask %04o after the listen, want it restored to 0", now)
	}
	ln2, err := listenSocket(filepath.Join(dir, "b.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	if fi, err := os.Stat(filepath.Join(dir, "b.sock")); err != nil || fi.Mode().Perm() != socketMode {
		t.Errorf("listenSocket: %v, %v; want mode %04o", fi.Mode(), err, socketMode)
	}
}
