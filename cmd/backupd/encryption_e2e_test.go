package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/proto/wire"
)

// cliStdin runs one backupd command with stdin.
func cliStdin(t *testing.T, bin, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "backupd"), args...)
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

// manifestEncrypted reads IsEncrypted from the latest backup's
// Manifest.plist.
func manifestEncrypted(t *testing.T, e env, udid string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "backups", udid, "Manifest.plist"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		IsEncrypted bool `plist:"IsEncrypted"`
	}
	if err := wire.Decode(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.IsEncrypted
}

// latestRun is the device's newest run, from history --json.
func latestRun(t *testing.T, e env, udid string) api.Run {
	t.Helper()
	out, _, code := cli(t, e.bin, "history", udid, "--json", "--limit", "1", "--config", e.config)
	var runs []api.Run
	if err := json.Unmarshal([]byte(out), &runs); err != nil || code != exitOK || len(runs) != 1 {
		t.Fatalf("history --json: exit %d, %v:\n%s", code, err, out)
	}
	return runs[0]
}

func TestE2EEncryption(t *testing.T) {
	e := newEnv(t, 1)
	pwFile := filepath.Join(e.dir, "pw")
	writeFile(t, pwFile, "correct horse\n")
	wrongFile := filepath.Join(e.dir, "wrong")
	writeFile(t, wrongFile, "battery staple\n")
	emptyFile := filepath.Join(e.dir, "empty")
	writeFile(t, emptyFile, "")

	// Without the daemon: a clear error and exit 3.
	_, errOut, code := cli(t, e.bin, "encryption", "on", "--password-file", pwFile, "--config", e.config)
	if code != exitNoDaemon || !strings.Contains(errOut, "daemon not running") {
		t.Errorf("encryption on without the daemon: exit %d, want %d: %s", code, exitNoDaemon, errOut)
	}

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
	if r := latestRun(t, e, udid); r.Encrypted || manifestEncrypted(t, e, udid) {
		t.Fatalf("the first backup is encrypted: %+v", r)
	}
	// Completion lists the phone.
	if out, _, code := cli(t, e.bin, "completion", "--udids", "--config", e.config); code != exitOK || strings.TrimSpace(out) != udid {
		t.Errorf("completion --udids: exit %d, %q, want %q", code, out, udid)
	}

	// Not while a backup runs: the phone serves one request at a time.
	e.ctl(t, "fault", udid, "slow-link=2000000")
	if out, errOut, code := cli(t, e.bin, "backup", "--full", "--config", e.config); code != exitOK {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errOut)
	}
	waitFor(t, "the backup to run", func() bool {
		rep, _ := e.status(t)
		return len(rep.Devices) == 1 && rep.Devices[0].State == api.StateBackingUp
	})
	_, errOut, code = cli(t, e.bin, "encryption", "on", "--password-file", pwFile, "--config", e.config)
	if code != exitError || !strings.Contains(errOut, "under way") {
		t.Errorf("encryption on during a backup: exit %d: %s", code, errOut)
	}
	e.ctl(t, "fault", udid, "clear")
	waitFor(t, "the backup to end", func() bool {
		rep, _ := e.status(t)
		return len(rep.Devices) == 1 && rep.Devices[0].State == api.StateSucceeded
	})

	// An empty password file changes nothing.
	_, errOut, code = cli(t, e.bin, "encryption", "on", "--password-file", emptyFile, "--config", e.config)
	if code != exitError || !strings.Contains(errOut, "is empty") {
		t.Errorf("encryption on with an empty password file: exit %d: %s", code, errOut)
	}
	// Without a file nor a terminal to ask on.
	_, errOut, code = cli(t, e.bin, "encryption", "on", "--config", e.config)
	if code != exitError || !strings.Contains(errOut, "no terminal") {
		t.Errorf("encryption on without a terminal: exit %d: %s", code, errOut)
	}

	// On, with the password from a file: the next backup is encrypted.
	out, errOut, code := cli(t, e.bin, "encryption", "on", "--password-file", pwFile, "--config", e.config)
	if code != exitOK || !strings.Contains(out, "encryption is on for "+name) || !strings.Contains(errOut, "passcode") {
		t.Fatalf("encryption on: exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// On again: it says how to change the password instead.
	_, errOut, code = cli(t, e.bin, "encryption", "on", udid, "--password-file", pwFile, "--config", e.config)
	if code != exitError || !strings.Contains(errOut, "already on") {
		t.Errorf("encryption on twice: exit %d: %s", code, errOut)
	}
	out, errOut, code = cli(t, e.bin, "backup", "--wait", "--config", e.config)
	if code != exitOK {
		t.Fatalf("backup --wait after encryption on: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := latestRun(t, e, udid); !r.Encrypted || r.Outcome != api.OutcomeSuccess {
		t.Errorf("the run after encryption on: %+v, want an encrypted success", r)
	}
	if !manifestEncrypted(t, e, udid) {
		t.Error("Manifest.plist says IsEncrypted false after encryption on")
	}
	rep, _ := e.status(t)
	if len(rep.Devices) != 1 || !rep.Devices[0].WillEncrypt {
		t.Errorf("status after encryption on: %+v, want will_encrypt", rep.Devices)
	}

	// Off with a wrong password: refused, exit 4, the cause and its fix.
	out, errOut, code = cli(t, e.bin, "encryption", "off", udid, "--password-file", wrongFile, "--config", e.config)
	if code != exitFailed || !strings.Contains(errOut, "wrong_backup_password") || !strings.Contains(errOut, "Fix: ") {
		t.Errorf("encryption off with a wrong password: exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitFailed, out, errOut)
	}
	// Off with the right one, from stdin: the next backup is not
	// encrypted.
	out, errOut, code = cliStdin(t, e.bin, "correct horse\n", "encryption", "off", "--password-file", "-", "--config", e.config)
	if code != exitOK || !strings.Contains(out, "encryption is off for "+name) {
		t.Fatalf("encryption off: exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	out, errOut, code = cli(t, e.bin, "backup", "--wait", "--config", e.config)
	if code != exitOK {
		t.Fatalf("backup --wait after encryption off: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := latestRun(t, e, udid); r.Encrypted || r.Outcome != api.OutcomeSuccess {
		t.Errorf("the run after encryption off: %+v, want an unencrypted success", r)
	}
	if manifestEncrypted(t, e, udid) {
		t.Error("Manifest.plist says IsEncrypted true after encryption off")
	}

	// The password never reaches the daemon's log.
	daemon.stop(t)
	if log := daemon.out.String(); strings.Contains(log, "correct horse") || strings.Contains(log, "battery staple") {
		t.Error("the daemon logged a backup password")
	}
}
