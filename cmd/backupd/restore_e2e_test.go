package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
)

// The restore end to end: backupd restore and versions against the
// simulated iPhone, whose restore report says what it received.

// simReport is iphonesim's restore-report, as key=value pairs.
type simReport map[string]string

func (e env) restoreReport(t *testing.T, udid string) simReport {
	t.Helper()
	out := e.ctl(t, "restore-report", udid)
	rep := simReport{}
	for line := range strings.SplitSeq(out, "\n") {
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				rep[k] = v
			}
		}
	}
	return rep
}

func (r simReport) int(t *testing.T, k string) int {
	t.Helper()
	n, err := strconv.Atoi(r[k])
	if err != nil {
		t.Fatalf("restore report %s=%q: %v (%v)", k, r[k], err, r)
	}
	return n
}

// requireAllIntact checks the simulator got every file it asked for
// with the content it had at the backed-up generation, and asked for
// files.
func (r simReport) requireAllIntact(t *testing.T) int {
	t.Helper()
	asked := r.int(t, "asked")
	if r["done"] != "true" || r["error-code"] != "0" || asked == 0 || r.int(t, "intact") != asked ||
		r.int(t, "damaged")+r.int(t, "missing")+r.int(t, "unknown") != 0 {
		t.Fatalf("the phone did not get every file intact: %v", r)
	}
	return asked
}

// versionsOf is versions --json.
func (e env) versionsOf(t *testing.T, udid string) versionsReport {
	t.Helper()
	out, errOut, code := cli(t, e.bin, "versions", udid, "--json", "--config", e.config)
	var rep versionsReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK {
		t.Fatalf("versions --json: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	return rep
}

// waitSettled waits until the phone is connected and its actor is done
// with it (after a reboot, the plug-in check).
func (e env) waitSettled(t *testing.T) api.Device {
	t.Helper()
	var d api.Device
	waitFor(t, "the phone to settle", func() bool {
		rep, _ := e.status(t)
		if len(rep.Devices) != 1 {
			return false
		}
		d = rep.Devices[0].Device
		switch d.State {
		case api.StateSucceeded, api.StateUpToDate, api.StateRestored, api.StateFailed, api.StateSkipped:
			return d.Connected
		}
		return false
	})
	return d
}

func TestE2ERestore(t *testing.T) {
	e := newEnv(t, 1)
	start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	d := e.waitSettled(t)
	udid := d.UDID
	first := e.versionsOf(t, udid)
	if len(first.Versions) != 1 || !first.Versions[0].Latest || !first.Versions[0].Verified || first.Versions[0].Files != 100 || !first.DaemonRunning {
		t.Fatalf("versions after the first backup: %+v", first)
	}
	original := first.Versions[0].ID

	// Without a terminal and without --yes, nothing happens.
	out, errOut, code := cli(t, e.bin, "restore", "--config", e.config)
	if code != exitUsage || !strings.Contains(errOut, "--yes") || !strings.Contains(errOut, "no terminal") {
		t.Fatalf("restore without a terminal nor --yes: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := latestRun(t, e, udid); r.Kind == api.KindRestore {
		t.Fatalf("a refused restore was recorded: %+v", r)
	}

	// The latest backup, a safety backup first.
	out, errOut, code = cli(t, e.bin, "restore", "--yes", "--wait", "--config", e.config)
	if code != exitOK || !strings.Contains(out, "safety backup done") || !strings.Contains(out, "restore done") {
		t.Fatalf("restore --yes --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	rep := e.restoreReport(t, udid)
	if n := rep.requireAllIntact(t); n != 100 {
		t.Errorf("the phone asked for %d files, want 100", n)
	}
	restoreStarted, err := time.Parse(time.RFC3339Nano, rep["started"])
	if err != nil {
		t.Fatalf("restore report started=%q: %v", rep["started"], err)
	}
	vs := e.versionsOf(t, udid)
	if len(vs.Versions) != 2 || !vs.Versions[0].Safety || !vs.Versions[0].Latest || vs.Versions[1].ID != original || vs.Versions[1].Safety {
		t.Fatalf("versions after the restore: %+v", vs)
	}
	if safety := vs.Versions[0].Time; !safety.Before(restoreStarted) {
		t.Errorf("the safety backup was completed at %v, not before the restore started at %v", safety, restoreStarted)
	}
	r := latestRun(t, e, udid)
	if r.Kind != api.KindRestore || r.Outcome != api.OutcomeSuccess || r.Version != original || r.Source != udid || r.Files == 0 ||
		!strings.Contains(r.Note, "safety backup "+vs.Versions[0].ID) {
		t.Errorf("the restore's run: %+v", r)
	}
	st, _ := e.status(t)
	if dev := st.Devices[0]; dev.LastAttempt == nil || dev.LastAttempt.Kind != api.KindRestore || !dev.LastSuccess.Before(restoreStarted) {
		t.Errorf("status after the restore: last attempt %+v, last success %v", dev.LastAttempt, dev.LastSuccess)
	}
	if out, _, _ := cli(t, e.bin, "status", "--config", e.config); !strings.Contains(out, "last restore") {
		t.Errorf("status does not name the restore:\n%s", out)
	}
	if out, _, _ := cli(t, e.bin, "versions", "--config", e.config); !strings.Contains(out, "safety backup") || !strings.Contains(out, original) {
		t.Errorf("versions:\n%s", out)
	}

	// After a change and another backup, the first version gives the
	// older content back.
	e.waitSettled(t)
	e.ctl(t, "mutate", udid, "0.3")
	if out, errOut, code := cli(t, e.bin, "backup", "--wait", "--config", e.config); code != exitOK {
		t.Fatalf("backup --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = cli(t, e.bin, "restore", "--yes", "--wait", "--no-safety-backup", "--from", original, "--config", e.config)
	if code != exitOK || strings.Contains(out, "safety backup") {
		t.Fatalf("restore --from %s: exit %d\n%s\n%s", original, code, out, errOut)
	}
	e.restoreReport(t, udid).requireAllIntact(t)
	if r := latestRun(t, e, udid); r.Version != original || r.Outcome != api.OutcomeSuccess {
		t.Errorf("restore --from %s ran %+v", original, r)
	}

	// Without the daemon, versions reads backup_dir.
	if out, errOut, code := cli(t, e.bin, "versions", udid, "--json", "--config", e.config); code != exitOK {
		t.Fatalf("versions: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestE2ERestoreFaults: each refusal of the phone, and a cable pulled
// mid-restore, ends restore --wait with exit 4 and the cause with its
// fix, and status --json and history --json name them; the pulled cable
// leaves every backup on disk as it was.
func TestE2ERestoreFaults(t *testing.T) {
	e := newEnv(t, 1)
	start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	udid := e.waitSettled(t).UDID
	tests := []struct {
		name   string
		ctl    [][]string
		want   cause.Code
		says   string
		unplug bool
	}{
		{"Find My on (211)", [][]string{{"findmy", udid, "on"}}, cause.FindMyEnabled, "", false},
		{"second restore without a restart (102)", [][]string{{"fault", udid, "error-code=102"}}, cause.RestoreNeedsReboot, "", false},
		{"wrong password (207)", [][]string{{"fault", udid, "error-code=207"}}, cause.WrongBackupPassword, "", false},
		{"passcode not entered (208)", [][]string{{"fault", udid, "passcode-never-entered=true", "passcode-delay=300ms"}}, cause.PasscodeNotEntered, "", false},
		{"unplugged mid-restore", [][]string{{"fault", udid, "unplug-after-bytes=200000"}}, cause.Disconnected, "may hold part of the backup", true},
	}
	for _, tt := range tests {
		e.waitSettled(t)
		for _, c := range tt.ctl {
			if out := e.ctl(t, c...); strings.Contains(out, "error") {
				t.Fatalf("%v: %s", c, out)
			}
		}
		before, err := repo.TreeHash(e.backupDir())
		if err != nil {
			t.Fatal(err)
		}
		out, errOut, code := cli(t, e.bin, "restore", "--yes", "--wait", "--no-safety-backup", "--config", e.config)
		in := cause.Lookup(tt.want)
		if code != exitFailed || !strings.Contains(out, "("+string(tt.want)+")") || !strings.Contains(out, "Fix: "+in.Fix) || !strings.Contains(out, tt.says) {
			t.Errorf("%s: exit %d, want %d with %s and its fix\n%s\n%s", tt.name, code, exitFailed, tt.want, out, errOut)
		}
		st, _ := e.status(t)
		if len(st.Devices) != 1 {
			t.Fatalf("status: %+v", st)
		}
		last := st.Devices[0].LastAttempt
		if last == nil || last.Kind != api.KindRestore || last.Cause != tt.want || last.Fix != in.Fix || last.Summary != in.Summary {
			t.Errorf("%s: status --json last attempt %+v", tt.name, last)
		}
		if r := latestRun(t, e, udid); r.Kind != api.KindRestore || r.Cause != tt.want || r.Fix != in.Fix || r.Source != udid {
			t.Errorf("%s: history --json %+v", tt.name, r)
		}
		if tt.unplug {
			if !strings.Contains(latestRun(t, e, udid).Note, "restore again") {
				t.Errorf("%s: the run does not say what to do: %+v", tt.name, latestRun(t, e, udid))
			}
			after, err := repo.TreeHash(e.backupDir())
			if err != nil {
				t.Fatal(err)
			}
			if after != before {
				t.Errorf("%s: the backups on disk changed", tt.name)
			}
		}
		e.ctl(t, "fault", udid, "clear")
		e.ctl(t, "findmy", udid, "off")
		if tt.unplug {
			e.ctl(t, "plug", udid)
		}
	}
}

// TestE2ERestoreEncrypted: an encrypted backup is restored with its
// password from a file; a wrong one is wrong_backup_password from the
// phone itself. The password is in no log, history record, event or hook
// event, and the hooks hear of the restore.
func TestE2ERestoreEncrypted(t *testing.T) {
	e := newEnv(t, 1)
	const password = "Tr0ub4dor&3-restore"
	pwFile := filepath.Join(e.dir, "pw")
	writeFile(t, pwFile, password+"\n")
	wrongFile := filepath.Join(e.dir, "wrong")
	writeFile(t, wrongFile, "not the password\n")
	hookOut := filepath.Join(e.dir, "hook.out")
	script := filepath.Join(e.dir, "hook.sh")
	writeFile(t, script, fmt.Sprintf("#!/bin/sh\n{ cat; echo; env | grep ^BACKUPD_; } >> %q\n", hookOut))
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "[[notify.hook]]\ncommand = [%q]\n", script)
	f.Close()
	daemon := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	udid := e.waitSettled(t).UDID
	if out, errOut, code := cli(t, e.bin, "encryption", "on", "--password-file", pwFile, "--config", e.config); code != exitOK {
		t.Fatalf("encryption on: exit %d\n%s\n%s", code, out, errOut)
	}
	if out, errOut, code := cli(t, e.bin, "backup", "--full", "--wait", "--config", e.config); code != exitOK || !manifestEncrypted(t, e, udid) {
		t.Fatalf("encrypted backup: exit %d\n%s\n%s", code, out, errOut)
	}
	stopEvents := collectEvents(t, e)

	out, errOut, code := cli(t, e.bin, "restore", "--yes", "--wait", "--no-safety-backup", "--password-file", wrongFile, "--config", e.config)
	if code != exitFailed || !strings.Contains(out, "(wrong_backup_password)") {
		t.Fatalf("restore with a wrong password: exit %d\n%s\n%s", code, out, errOut)
	}
	if rep := e.restoreReport(t, udid); rep["error-code"] != "207" || rep["asked"] != "0" {
		t.Errorf("the phone took a wrong password: %v", rep)
	}
	e.waitSettled(t)
	out, errOut, code = cli(t, e.bin, "restore", "--yes", "--wait", "--password-file", pwFile, "--config", e.config)
	if code != exitOK || !strings.Contains(out, "restore done") {
		t.Fatalf("restore with the password: exit %d\n%s\n%s", code, out, errOut)
	}
	if rep := e.restoreReport(t, udid); rep["password"] != "true" {
		t.Errorf("the Restore request carried no password: %v", rep)
	} else {
		rep.requireAllIntact(t)
	}
	waitFor(t, "the hook to hear of the restore", func() bool {
		b, _ := os.ReadFile(hookOut)
		return strings.Contains(string(b), `"event":"restore_success"`) && strings.Contains(string(b), `"event":"restore_failure"`)
	})
	stream := stopEvents()
	history, _, _ := cli(t, e.bin, "history", "--json", "--config", e.config)
	hooks, _ := os.ReadFile(hookOut)
	db, err := os.ReadFile(filepath.Join(e.stateDir(), "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"the daemon's log": daemon.out.String(), "history --json": history,
		"the history file": string(db), "the hook's events": string(hooks), "the event stream": stream, "restore's output": out + errOut} {
		if strings.Contains(text, password) {
			t.Errorf("%s holds the password", what)
		}
	}
	if !strings.Contains(stream, `"kind":"restore"`) {
		t.Errorf("the event stream told no restore run:\n%.2000s", stream)
	}
}

// collectEvents reads the daemon's event stream until the returned
// function is called, which returns every event as JSON.
func collectEvents(t *testing.T, e env) func() string {
	t.Helper()
	c := client.New(filepath.Join(e.stateDir(), api.SocketName))
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.Events(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := stream.Next()
			if err != nil {
				return
			}
			j, _ := json.Marshal(ev)
			b.Write(append(j, '\n'))
		}
	}()
	return func() string {
		cancel()
		stream.Close()
		<-done
		c.Close()
		return b.String()
	}
}
