package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/daemon/api"
)

// TestE2EUDIDSpelling: a UDID typed in upper case names the phone whose
// usbmuxd spelling is lower case (issue #16): the CLI's backup and
// history and the API's device path find it, and there is one backup
// folder and one history, not one per spelling (on macOS and Windows two
// spellings would share the folder).
func TestE2EUDIDSpelling(t *testing.T) {
	e := newEnv(t, 1)
	e.setConfig(t, "policy", `min_interval = "0s"`)
	start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	udid := e.firstUDID(t)
	upper := strings.ToUpper(udid)
	if upper == udid {
		t.Fatalf("the simulator's UDID %s has no lower case to test with", udid)
	}
	c := e.api(t)
	waitFor(t, "the phone to settle", func() bool {
		d, err := c.Device(ctxFor(t, 5*time.Second), udid)
		return err == nil && d.Connected && d.State != api.StateSettling && d.State != api.StateBackingUp && d.State != api.StateChecking && d.State != api.StateQueued
	})
	if out, errOut, code := cli(t, e.bin, "backup", upper, "--wait", "--config", e.config); code != exitOK {
		t.Fatalf("backup %s --wait: exit %d\n%s\n%s", upper, code, out, errOut)
	}
	d, err := c.Device(ctxFor(t, 5*time.Second), upper)
	if err != nil || d.UDID != udid {
		t.Errorf("GET /devices/%s: %+v, %v; want the phone %s", upper, d, err, udid)
	}
	out, errOut, code := cli(t, e.bin, "history", upper, "--config", e.config)
	if code != exitOK || strings.Count(out, "success") < 2 {
		t.Errorf("history %s: exit %d, want the plug-in and the asked-for backups\n%s%s", upper, code, out, errOut)
	}
	ents, err := os.ReadDir(e.backupDir())
	if err != nil {
		t.Fatal(err)
	}
	var folders []string
	for _, en := range ents {
		if en.Name() != ".backupd" {
			folders = append(folders, en.Name())
		}
	}
	if len(folders) != 1 || folders[0] != udid {
		t.Errorf("backup folders %v, want only %s", folders, udid)
	}
	out, _, _ = cli(t, e.bin, "devices", "--config", e.config)
	if strings.Contains(out, upper) {
		t.Errorf("devices lists the upper-case spelling as a phone of its own:\n%s", out)
	}
}
