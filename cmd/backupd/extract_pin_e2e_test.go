//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/backupd/backupd/sim"
)

// pinHeld reports whether another process holds a lock on path (a pin's
// shared lock). Taking the lock for a moment to find out is harmless: a
// pinner waits for it.
func pinHeld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return false
	}
	return errors.Is(err, unix.EWOULDBLOCK)
}

// TestE2EExtractPinnedAgainstRetention: an extract run in its own
// process pins the version it reads; the daemon's retention during it
// (two commits, each of which would remove that version with
// keep_versions = 1) keeps it, the extract gets exactly its files, and
// the first retention after the extract removes it. The extract holds
// its pin while it waits for the password on stdin, which lets the test
// run the backups in between.
func TestE2EExtractPinnedAgainstRetention(t *testing.T) {
	e, d := simEnv(t, sim.DeviceConfig{BackupPassword: "pw", Files: sim.FileSpec{Seed: 17, Count: 40, MaxSize: 32 << 10}}, "keep_versions = 1")
	daemon := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	waitFirstBackup(t, e)
	first := present(d.Files(), nil)
	d.Mutate(0.5)
	backupWait(t, e)
	v := olderVersion(t, e, d.UDID())

	dest := filepath.Join(e.dir, "out")
	cmd := exec.Command(filepath.Join(e.bin, "backupd"), "extract", "--from", v.Name, "--password-file", "-", "--json", "--to", dest, "--config", e.config)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	lock := filepath.Join(e.backupDir(), ".backupd", "pins", d.UDID(), v.Name)
	waitFor(t, "the extract to pin "+v.Name, func() bool { return pinHeld(lock) })

	for range 2 {
		d.Mutate(0.5)
		backupWait(t, e)
	}
	if _, err := os.Stat(v.Path); err != nil {
		t.Fatalf("retention removed the version an extract pinned: %v", err)
	}
	if !strings.Contains(daemon.out.String(), "kept an old version a restore or an extract is reading") {
		t.Error("the daemon's log does not say it kept the pinned version")
	}

	stdin.Write([]byte("pw\n"))
	stdin.Close()
	select {
	case <-exited:
		err = waitErr
	case <-time.After(60 * time.Second):
		t.Fatal("extract did not end")
	}
	var rep extractReport
	if jerr := json.Unmarshal(out.Bytes(), &rep); err != nil || jerr != nil || rep.Files != len(first) || rep.Version != v.Name {
		t.Fatalf("extract: %v %v %+v\n%s\n%s", err, jerr, rep, out.String(), errOut.String())
	}
	checkTree(t, dest, first)

	backupWait(t, e)
	if _, err := os.Stat(v.Path); !os.IsNotExist(err) {
		t.Fatalf("the version is still kept after the extract ended: %v", err)
	}

	// A reader that cannot make its lock file (a read-only backup_dir)
	// reads without a pin and says so.
	daemon.stop(t)
	pins := filepath.Join(e.backupDir(), ".backupd", "pins")
	if err := os.RemoveAll(pins); err != nil {
		t.Fatal(err)
	}
	writeFile(t, pins, "")
	o, eo, code := cliStdin(t, e.bin, "pw\n", "files", "--password-file", "-", "--config", e.config)
	if code != exitOK || !strings.Contains(eo, "reading without a lock") || strings.Count(o, "\n") != len(present(d.Files(), nil)) {
		t.Errorf("files without a lock file: exit %d\n%s\n%s", code, o, eo)
	}
}
