package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/backupd/backupd/daemon/api"
)

func runVerify(t *testing.T, e env, args ...string) (verifyReport, string, int) {
	t.Helper()
	out, errOut, code := cli(t, e.bin, append([]string{"verify", "--json", "--config", e.config}, args...)...)
	var rep verifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("verify --json %v: exit %d, %v\nstdout:\n%s\nstderr:\n%s", args, code, err, out, errOut)
	}
	return rep, errOut, code
}

// someBackupFile returns a file in the backup's xx/ directories.
func someBackupFile(t *testing.T, dir string) string {
	t.Helper()
	hex2 := regexp.MustCompile(`^[0-9a-f]{2}$`)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range entries {
		if !d.IsDir() || !hex2.MatchString(d.Name()) {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, d.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) > 0 {
			return filepath.Join(dir, d.Name(), files[0].Name())
		}
	}
	t.Fatalf("no file in %s", dir)
	return ""
}

func TestE2EVerify(t *testing.T) {
	e := newEnv(t, 1)
	daemon := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	var udid, name string
	waitFor(t, "the plug-in backup", func() bool {
		rep, _ := e.status(t)
		if len(rep.Devices) == 1 && !rep.Devices[0].LastSuccess.IsZero() && rep.Devices[0].State != api.StateBackingUp {
			udid, name = rep.Devices[0].UDID, rep.Devices[0].Name
			return true
		}
		return false
	})
	// A second backup makes the first a version.
	if out, errOut, code := cli(t, e.bin, "backup", "--full", "--wait", "--config", e.config); code != exitOK {
		t.Fatalf("backup --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	latest := filepath.Join(e.dir, "backups", udid)

	rep, _, code := runVerify(t, e)
	if code != exitOK || !rep.DaemonRunning || len(rep.Backups) != 1 {
		t.Fatalf("verify: exit %d, %+v", code, rep)
	}
	if b := rep.Backups[0]; !b.OK || !b.Latest || b.UDID != udid || b.Name != name || b.Path != latest || b.Files != 100 || b.Size <= 0 || len(b.Problems) != 0 {
		t.Errorf("verify's result for the latest: %+v", b)
	}
	rep, _, code = runVerify(t, e, "--versions", udid)
	if code != exitOK || len(rep.Backups) != 2 || !rep.Backups[0].Latest || rep.Backups[1].Latest || rep.Backups[1].Version == "" || !rep.Backups[1].OK {
		t.Fatalf("verify --versions UDID: exit %d, %+v", code, rep)
	}
	out, _, code := cli(t, e.bin, "verify", "--versions", "--config", e.config)
	if code != exitOK || strings.Count(out, "✓ "+name) != 2 || !strings.Contains(out, "2 backups verified") {
		t.Errorf("verify --versions: exit %d:\n%s", code, out)
	}

	// A file missing from the latest backup: ✗, the problem named, exit
	// 1; the version still verifies.
	gone := someBackupFile(t, latest)
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	out, _, code = cli(t, e.bin, "verify", "--versions", "--config", e.config)
	rel := filepath.Base(filepath.Dir(gone)) + "/" + filepath.Base(gone)
	if code != exitError || !strings.Contains(out, "✗ "+name) || !strings.Contains(out, "✓ "+name) || !strings.Contains(out, rel) || !strings.Contains(out, "1 of 2 backups do not verify") {
		t.Errorf("verify with a file missing: exit %d, want %d:\n%s", code, exitError, out)
	}

	// Errors: a device with no backup, a UDID that cannot be one.
	_, errOut, code := cli(t, e.bin, "verify", "0000NOSUCHPHONE", "--config", e.config)
	if code != exitError || !strings.Contains(errOut, "no backup of 0000NOSUCHPHONE") {
		t.Errorf("verify of an unknown device: exit %d: %s", code, errOut)
	}

	// Without the daemon: read directly, the same verdict.
	daemon.stop(t)
	rep, errOut, code = runVerify(t, e, "--versions")
	if code != exitError || rep.DaemonRunning || !strings.Contains(errOut, "daemon not running") || len(rep.Backups) != 2 || rep.Backups[0].OK || !rep.Backups[1].OK ||
		len(rep.Backups[0].Problems) != 1 || !strings.Contains(rep.Backups[0].Problems[0], rel) || rep.Backups[0].Name != name {
		t.Errorf("verify --versions without the daemon: exit %d, %+v\n%s", code, rep, errOut)
	}
	_, errOut, code = cli(t, e.bin, "verify", "0000NOSUCHPHONE", "--config", e.config)
	if code != exitError || !strings.Contains(errOut, "no backup of 0000NOSUCHPHONE") {
		t.Errorf("verify of an unknown device without the daemon: exit %d: %s", code, errOut)
	}
}
