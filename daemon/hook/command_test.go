//go:build unix

package hook

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeScript writes an executable shell script.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCommand: a real command receives the event as JSON on stdin and
// as environment variables, its argv as configured (no shell between).
func TestCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	script := writeScript(t, `cat > "$1.json"
env | grep '^BACKUPD_' | sort > "$1.env"
printf '%s\n' "$2" > "$1.arg"
echo "said something"
`)
	n, err := New(Options{Hooks: []Hook{{Command: []string{script, out, "two words; $(no shell)"}}}, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	n.Fire(testEvent)
	closeAll(t, n)
	if st := n.Stats(); st.Delivered != 1 {
		t.Fatalf("stats = %+v", st)
	}
	data, err := os.ReadFile(out + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatalf("stdin %q: %v", data, err)
	}
	if ev.UDID != testEvent.UDID || ev.Summary != testEvent.Summary || ev.RunID != 7 || ev.Hostname != "h" {
		t.Errorf("stdin event = %+v", ev)
	}
	env, _ := os.ReadFile(out + ".env")
	for _, want := range []string{
		"BACKUPD_EVENT=failure", "BACKUPD_UDID=" + testEvent.UDID, "BACKUPD_DEVICE=Anna's iPhone",
		"BACKUPD_OUTCOME=failed", "BACKUPD_CAUSE=host_disk_full", "BACKUPD_SUMMARY=" + testEvent.Summary,
		"BACKUPD_FIX=Free up space.", "BACKUPD_DEVICE_ERROR_CODE=105", "BACKUPD_BYTES=2048", "BACKUPD_FILES=3",
		"BACKUPD_DURATION=12.500", "BACKUPD_RUN_ID=7", "BACKUPD_HOSTNAME=h", "BACKUPD_TRIGGER=plug_in",
	} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("environment lacks %q:\n%s", want, env)
		}
	}
	arg, _ := os.ReadFile(out + ".arg")
	if string(arg) != "two words; $(no shell)\n" {
		t.Errorf("argument = %q: went through a shell?", arg)
	}
}

// TestCommandFails: a non-zero exit is a failure, logged with its output.
func TestCommandFails(t *testing.T) {
	script := writeScript(t, "echo 'no route to ntfy' >&2\nexit 3\n")
	n, err := New(Options{Hooks: []Hook{{Command: []string{script}}}})
	if err != nil {
		t.Fatal(err)
	}
	got := n.runCommand(context.Background(), n.opts.Hooks[0], testEvent)
	closeAll(t, n)
	if got == nil || !strings.Contains(got.Error(), "exit status 3") || !strings.Contains(got.Error(), "no route to ntfy") {
		t.Errorf("err = %v, want exit status 3 with the output", got)
	}
}

// TestCommandHangs: a hook that hangs is killed at its timeout, with the
// child it started (its process group), and the next event still runs.
func TestCommandHangs(t *testing.T) {
	dir := t.TempDir()
	script := writeScript(t, `if [ "$BACKUPD_EVENT" = success ]; then touch "$1/second"; exit 0; fi
sleep 300 &
echo $! > "$1/child"
wait
`)
	n, err := New(Options{Hooks: []Hook{{Command: []string{script, dir}}}, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n.Fire(Event{Event: KindFailure, UDID: "u"})
	n.Fire(Event{Event: KindSuccess, UDID: "u"})
	closeAll(t, n)
	took := time.Since(start)
	if st := n.Stats(); st.Failed != 1 || st.Delivered != 1 {
		t.Errorf("stats = %+v, want the hung run failed and the next delivered", st)
	}
	// The timeout plus exec's wait for the output bounds it; a minute
	// means nothing killed it.
	if took > 30*time.Second {
		t.Errorf("took %v: the hook was not killed", took)
	}
	if _, err := os.Stat(filepath.Join(dir, "second")); err != nil {
		t.Errorf("the next event did not run: %v", err)
	}
	pidText, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidText)))
	// A zombie would still answer signal 0 until reaped by init, so
	// look at its state too.
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("the hook's child %d survived the kill", pid)
	}
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestHookCheck(t *testing.T) {
	script := writeScript(t, "exit 0\n")
	tests := []struct {
		name  string
		hook  Hook
		field string // "" means valid
	}{
		{"command", Hook{Command: []string{script, "x"}}, ""},
		{"command on PATH", Hook{Command: []string{"sh", "-c", "true"}}, ""},
		{"webhook", Hook{Webhook: "https://ntfy.sh/topic", Body: "text", Headers: map[string]string{"Title": "x"}}, ""},
		{"nothing", Hook{}, "command"},
		{"both", Hook{Command: []string{script}, Webhook: "https://x"}, "webhook"},
		{"empty program", Hook{Command: []string{""}}, "command"},
		{"missing program", Hook{Command: []string{"/nonexistent/hook"}}, "command"},
		{"headers on a command", Hook{Command: []string{script}, Headers: map[string]string{"A": "b"}}, "headers"},
		{"ftp", Hook{Webhook: "ftp://host/x"}, "webhook"},
		{"no host", Hook{Webhook: "https:///x"}, "webhook"},
		{"not a URL", Hook{Webhook: "ntfy.sh/topic"}, "webhook"},
		{"bad body", Hook{Webhook: "https://h/x", Body: "xml"}, "body"},
		{"bad header", Hook{Webhook: "https://h/x", Headers: map[string]string{"Bad Name": "v"}}, "headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.hook.Check()
			var fe *FieldError
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tt.field != "" && !errors.As(err, &fe):
				t.Errorf("err = %v, want a FieldError on %s", err, tt.field)
			case tt.field != "" && fe.Field != tt.field:
				t.Errorf("field = %s (%v), want %s", fe.Field, err, tt.field)
			}
		})
	}
}
