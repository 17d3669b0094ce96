package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/doctor"
)

// The doctor's end-to-end tests: the real binaries against a simulated
// iPhone, healthy and then broken one way at a time, each of which must
// fail exactly the check that names the problem.

// doctorJSON runs `backupd doctor --json` and decodes its report.
func (e env) doctorJSON(t *testing.T, config string, args ...string) (doctor.Report, int) {
	t.Helper()
	out, errOut, code := cli(t, e.bin, append([]string{"doctor", "--json", "--config", config}, args...)...)
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor --json (exit %d): %v\nstdout: %s\nstderr: %s", code, err, out, errOut)
	}
	return rep, code
}

// firstUDID is the UDID of the simulator's first phone.
func (e env) firstUDID(t *testing.T) string {
	t.Helper()
	line, _, _ := strings.Cut(strings.TrimSpace(e.ctl(t, "list")), "\n")
	udid, _, _ := strings.Cut(line, "\t")
	if udid == "" {
		t.Fatalf("no phone in iphonesim ctl list: %q", line)
	}
	return udid
}

// variant writes a copy of the environment's configuration with old
// replaced by new.
func (e env) variant(t *testing.T, name, old, new string) string {
	t.Helper()
	data, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("the test configuration has no %q:\n%s", old, data)
	}
	path := filepath.Join(e.dir, name+".toml")
	writeFile(t, path, strings.Replace(string(data), old, new, 1))
	return path
}

// checkOf returns the check id of the phone udid, or of the computer when
// udid is empty.
func checkOf(t *testing.T, rep doctor.Report, udid, id string) doctor.Check {
	t.Helper()
	cs := rep.Checks
	if udid != "" {
		cs = nil
		for _, d := range rep.Devices {
			if d.UDID == udid {
				cs = d.Checks
			}
		}
	}
	for _, c := range cs {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("doctor reported no check %q for %q: %+v", id, udid, rep)
	return doctor.Check{}
}

// expectOneFailure runs doctor with and without --json and wants exactly
// the check want (an ID, "UDID/ID" for a phone's) to fail, with cause
// code and its fix.
func (e env) expectOneFailure(t *testing.T, config, want string, code cause.Code) {
	t.Helper()
	rep, exit := e.doctorJSON(t, config)
	if got := rep.Failures(); exit != exitError || rep.OK || !slices.Equal(got, []string{want}) {
		t.Fatalf("doctor --json: exit %d, failed checks %v; want exit %d and only %s\n%+v", exit, got, exitError, want, rep)
	}
	dev, id, ok := strings.Cut(want, "/")
	if !ok {
		dev, id = "", dev
	}
	c := checkOf(t, rep, dev, id)
	if c.Cause != code || c.Fix != cause.Lookup(code).Fix {
		t.Errorf("%s: cause %q, fix %q; want %q and its fix", want, c.Cause, c.Fix, code)
	}
	out, _, exit := cli(t, e.bin, "doctor", "--config", config)
	if exit != exitError || !strings.Contains(out, "✗ "+c.Title) || !strings.Contains(out, "Fix: "+cause.Lookup(code).Fix) || !strings.Contains(out, "1 check failed") {
		t.Errorf("doctor: exit %d, want %d, a ✗ %s row with its fix and one failure:\n%s", exit, exitError, c.Title, out)
	}
}

func TestE2EDoctor(t *testing.T) {
	e := newEnv(t, 1)
	udid := e.firstUDID(t)
	daemon := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	waitFor(t, "the plug-in backup", func() bool {
		rep, _ := e.status(t)
		return len(rep.Devices) == 1 && !rep.Devices[0].LastSuccess.IsZero() && rep.Devices[0].State == "succeeded"
	})

	// Healthy, with the service running: every check passes.
	rep, code := e.doctorJSON(t, e.config)
	if code != exitOK || !rep.OK || !rep.DaemonRunning || len(rep.Devices) != 1 || rep.Devices[0].UDID != udid {
		t.Fatalf("doctor --json on a healthy setup: exit %d, report %+v", code, rep)
	}
	for _, c := range append(slices.Clone(rep.Checks), rep.Devices[0].Checks...) {
		if c.Status != doctor.OK {
			t.Errorf("healthy setup: %s is %s: %s", c.ID, c.Status, c.Found)
		}
	}
	out, _, code := cli(t, e.bin, "doctor", udid, "--config", e.config)
	if code != exitOK || !strings.Contains(out, "All checks passed.") || strings.Contains(out, "\n  ✗ ") || !strings.Contains(out, "\n  ✓ sync lock") {
		t.Errorf("doctor UDID on a healthy setup: exit %d\n%s", code, out)
	}
	t.Logf("doctor, healthy:\n%s", out)

	// Without the service, doctor still works: it reads the history, and
	// only says what it cannot know.
	if code := daemon.stop(t); code != 0 {
		t.Fatalf("backupd run exited %d", code)
	}
	rep, code = e.doctorJSON(t, e.config)
	if code != exitOK || !rep.OK || rep.DaemonRunning {
		t.Fatalf("doctor --json without the service: exit %d, failures %v", code, rep.Failures())
	}
	if c := checkOf(t, rep, "", doctor.IDDaemon); c.Status != doctor.Warning {
		t.Errorf("daemon check without the service: %+v", c)
	}
	if c := checkOf(t, rep, udid, doctor.IDFlaps); c.Status != doctor.Skipped || !strings.Contains(c.Found, "unknown") {
		t.Errorf("flaps without the service: %+v", c)
	}
	if c := checkOf(t, rep, udid, doctor.IDLastRun); c.Status != doctor.OK || !strings.Contains(c.Found, "succeeded") {
		t.Errorf("last run from the history: %+v", c)
	}

	// Broken one way at a time.
	t.Run("locked", func(t *testing.T) {
		e.ctl(t, "lock", udid)
		defer e.ctl(t, "unlock", udid)
		e.expectOneFailure(t, e.config, udid+"/"+doctor.IDLockdown, cause.DeviceLocked)
	})
	t.Run("busy lock", func(t *testing.T) {
		e.ctl(t, "fault", udid, "lock-never-granted=true")
		defer e.ctl(t, "fault", udid, "clear")
		e.expectOneFailure(t, e.config, udid+"/"+doctor.IDSyncLock, cause.DeviceBusy)
	})
	t.Run("full disk", func(t *testing.T) {
		cfg := e.variant(t, "full", "free_space_margin = 0", `free_space_margin = "1000TiB"`)
		e.expectOneFailure(t, cfg, udid+"/"+doctor.IDFreeSpace, cause.HostDiskFull)
	})
	t.Run("usbmuxd down", func(t *testing.T) {
		cfg := e.variant(t, "nomux", "UNIX:"+e.mux, "UNIX:"+filepath.Join(e.dir, "dead.sock"))
		e.expectOneFailure(t, cfg, doctor.IDUsbmuxd, cause.UsbmuxdUnavailable)
		rep, _ := e.doctorJSON(t, cfg)
		if c := checkOf(t, rep, "", doctor.IDDevices); c.Status != doctor.Skipped || len(rep.Devices) != 0 {
			t.Errorf("with usbmuxd down the phones are not skipped: %+v", rep)
		}
	})
	t.Run("backup folder missing", func(t *testing.T) {
		cfg := e.variant(t, "nodir", "backup_dir = "+fmt.Sprintf("%q", filepath.Join(e.dir, "backups")), fmt.Sprintf("backup_dir = %q", filepath.Join(e.dir, "unmounted")))
		e.expectOneFailure(t, cfg, doctor.IDBackupDir, cause.HostNotWritable)
	})
	// After all that, healthy again.
	if rep, code := e.doctorJSON(t, e.config); code != exitOK || !rep.OK {
		t.Errorf("doctor after the faults were cleared: exit %d, failures %v", code, rep.Failures())
	}
}

// TestE2EDoctorUntrusted: a phone never paired fails the pair record
// check (trust cannot even be tried); a phone that forgot this computer
// has a record it refuses, and fails the trust check.
func TestE2EDoctorUntrusted(t *testing.T) {
	for _, tc := range []struct {
		pairing string
		check   string
		cause   cause.Code
	}{
		{"unpaired", doctor.IDPairRecord, cause.NotPaired},
		{"forgotten", doctor.IDLockdown, cause.PairingInvalid},
	} {
		t.Run(tc.pairing, func(t *testing.T) {
			e := newPairingEnv(t, tc.pairing)
			udid := e.firstUDID(t)
			e.expectOneFailure(t, e.config, udid+"/"+tc.check, tc.cause)
			rep, _ := e.doctorJSON(t, e.config)
			for _, id := range []string{doctor.IDBattery, doctor.IDEncryption, doctor.IDSyncLock} {
				if c := checkOf(t, rep, udid, id); c.Status != doctor.Skipped {
					t.Errorf("%s on an untrusted phone: %+v, want skipped", id, c)
				}
			}
		})
	}
}

// newPairingEnv is newEnv with the phone paired as pairing says and no
// daemon.
func newPairingEnv(t *testing.T, pairing string) env {
	t.Helper()
	e := configEnv(t, "")
	startSim(t, e.bin, e.mux, "--pairing", pairing, "--files", "10")
	return e
}

func TestDoctorUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"doctor", "-h"}, exitOK, "Exit codes: 0 no check failed"},
		{[]string{"doctor", "not/a/udid"}, exitUsage, "is not a UDID"},
		{[]string{"doctor", "a", "b"}, exitUsage, "unexpected argument"},
		{[]string{"doctor", "--bogus"}, exitUsage, "flag provided but not defined"},
	} {
		var out, errOut strings.Builder
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.want) {
			t.Errorf("backupd %s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), code, tc.code, tc.want, out.String(), errOut.String())
		}
	}
	// A bad configuration is exit 5, as for every command.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	writeFile(t, cfg, "no_such_key = 1\n")
	var out, errOut strings.Builder
	if code := run([]string{"doctor", "--config", cfg}, &out, &errOut); code != exitBadConfig || !strings.Contains(errOut.String(), "no_such_key") {
		t.Errorf("doctor with a bad config: exit %d, stderr %s", code, errOut.String())
	}
}
