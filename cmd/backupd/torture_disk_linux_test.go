package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/sim/simtest"
)

// Environment of a test re-executed inside a private mount namespace.
const (
	tortureInnerEnv = "BACKUPD_TORTURE_INNER" // the name of the test to run inside
	tortureBinEnv   = "BACKUPD_TORTURE_BIN"   // the outer test's built binaries
)

// inMountNamespace runs the calling test again inside `unshare --mount`
// (as root), so that its tmpfs and read-only mounts vanish with it, and
// reports whether the caller is that inner run. The outer run returns
// false once the inner one has passed (or fails the test if it did not).
func inMountNamespace(t *testing.T) bool {
	t.Helper()
	if os.Getenv(tortureInnerEnv) == t.Name() {
		// Use the outer run's binaries: a copy, since this test binary
		// removes its binDir when it exits.
		src := os.Getenv(tortureBinEnv)
		buildOnce.Do(func() {
			binDir, buildErr = os.MkdirTemp("", "bdbin")
			for _, name := range []string{"backupd", "iphonesim"} {
				if buildErr == nil {
					buildErr = copyFile(filepath.Join(src, name), filepath.Join(binDir, name))
				}
			}
		})
		if err := syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
			t.Fatalf("make / private in the mount namespace: %v", err)
		}
		return true
	}
	requireRoot(t, "it mounts a tmpfs in a private mount namespace")
	unshare := simtest.RequireTool(t, "unshare")
	bin := binaries(t)
	cmd := exec.Command(unshare, "--mount", "--fork", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), tortureInnerEnv+"="+t.Name(), tortureBinEnv+"="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s in a mount namespace: %v\n%s", t.Name(), err, out)
	}
	t.Logf("in a mount namespace:\n%s", out)
	return false
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// fillDisk writes path until the file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// fillWhenWriting waits until a backup has written 1 MiB to the file
// system of dir, then fills it with path.
func fillWhenWriting(dir, path string) error {
	free := func() (int64, error) {
		var st syscall.Statfs_t
		err := syscall.Statfs(dir, &st)
		return int64(st.Bavail) * st.Bsize, err
	}
	start, err := free()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		now, err := free()
		if err != nil {
			return err
		}
		if start-now > 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the backup wrote nothing within 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

// TestTortureDisk runs the daemon with backup_dir on a small tmpfs, in a
// private mount namespace: a full backup that fills the disk mid-transfer
// (real ENOSPC), a disk already full before the start (the preflight), and
// backup_dir remounted read-only (real EROFS). Each fails with its cause
// (host_disk_full, host_not_writable), leaves the last good backup
// byte-identical, no staging and nothing outside the roots; once there is
// space again, or the disk is writable, the next backup succeeds.
func TestTortureDisk(t *testing.T) {
	if !inMountNamespace(t) {
		return
	}
	var disk string
	r := newRig(t, rigOptions{
		// About 7.5 MB on the phone, on a 24 MiB tmpfs: room for a second
		// full backup, so that the device agrees to start one.
		files: 200, margin: 1 << 20,
		prepare: func(t *testing.T, dir string) string {
			disk = filepath.Join(dir, "disk")
			if err := os.Mkdir(disk, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=24m,mode=0755"); err != nil {
				t.Fatalf("mount tmpfs: %v", err)
			}
			t.Cleanup(func() { syscall.Unmount(disk, syscall.MNT_DETACH) })
			b := filepath.Join(disk, "backups")
			if err := os.Mkdir(b, 0o755); err != nil {
				t.Fatal(err)
			}
			return b
		},
	})
	r.startDaemon(t)
	r.settled(t)
	good := r.mustBackup(t, false)
	var size int64
	filepath.Walk(filepath.Join(r.backups, r.udid), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			size += fi.Size()
		}
		return nil
	})
	if size < 7<<20 {
		t.Fatalf("the backup holds %d bytes; the trials need more than 7 MiB", size)
	}

	type trial struct {
		name  string
		setup func(t *testing.T) // makes the disk fail
		full  bool
		want  cause.Code
		// outcome is failed, or skipped for the preflight.
		outcome string
		errno   string // what the run's errno must say, if anything
		undo    func(t *testing.T)
	}
	filler := filepath.Join(disk, "filler")
	r.ours = append(r.ours, "disk/filler")
	var filled chan error
	trials := []trial{
		{name: "full mid-backup", full: true, want: cause.HostDiskFull, outcome: api.OutcomeFailed, errno: "no space left",
			// The device asks for the free space first and would refuse
			// by itself (ErrorCode 105) on a disk too small: the disk
			// fills while the files travel instead, over a capped link.
			setup: func(t *testing.T) {
				r.ctl(t, "fault", r.udid, "slow-link=3000000")
				filled = make(chan error, 1)
				go func() { filled <- fillWhenWriting(disk, filler) }()
			},
			undo: func(t *testing.T) {
				if err := <-filled; err != nil {
					t.Errorf("filling the disk mid-backup: %v", err)
				}
				r.ctl(t, "fault", r.udid, "clear")
				if err := os.Remove(filler); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "full before the start", setup: func(t *testing.T) { fillDisk(t, filler) }, want: cause.HostDiskFull, outcome: api.OutcomeSkipped,
			undo: func(t *testing.T) {
				if err := os.Remove(filler); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "read-only", want: cause.HostNotWritable, outcome: api.OutcomeFailed,
			setup: func(t *testing.T) {
				// A read-only bind mount over backup_dir: the daemon's
				// open lock file keeps the tmpfs itself from a remount.
				if err := syscall.Mount(r.backups, r.backups, "", syscall.MS_BIND, ""); err != nil {
					t.Fatalf("bind mount: %v", err)
				}
				if err := syscall.Mount("", r.backups, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
					t.Fatalf("remount read-only: %v", err)
				}
			},
			undo: func(t *testing.T) {
				if err := syscall.Unmount(r.backups, 0); err != nil {
					t.Fatalf("unmount the read-only bind: %v", err)
				}
			}},
	}
	tally := tortureTally{Suite: "full/read-only disk"}
	for _, tr := range trials {
		tally.Trials++
		ok := t.Run(strings.ReplaceAll(tr.name, " ", "_"), func(t *testing.T) {
			r.ctl(t, "mutate", r.udid, "0.01")
			tr.setup(t)
			before := r.snapshot(t)
			code, run, out := r.backup(t, tr.full)
			if code != exitFailed || run.Outcome != tr.outcome || run.Cause != tr.want {
				t.Errorf("backup: exit %d (want %d), run %s/%s, want %s/%s\n%s", code, exitFailed, run.Outcome, run.Cause, tr.outcome, tr.want, out)
			}
			if !strings.Contains(run.Errno, tr.errno) {
				t.Errorf("run's errno %q, want %q", run.Errno, tr.errno)
			}
			t.Logf("%s: %s, errno %q, device code %d %s", tr.name, run.Cause, run.Errno, run.DeviceErrorCode, run.Note)
			if got := r.latestHash(t); got != good {
				t.Error("the last good backup changed")
			}
			if left := r.stagingLeft(t); len(left) > 0 {
				t.Errorf("staging left: %v", left)
			}
			tally.OutsideBytes += r.outside(t, before)
			tr.undo(t)
			r.settled(t)
			good = r.mustBackup(t, false)
		})
		if !ok {
			tally.Failures++
		}
	}
	recordTorture(t, tally)
}
