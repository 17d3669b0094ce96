package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim"
)

// TestTortureHostileName plugs in a phone whose name has CR/LF, ESC,
// invalid UTF-8 or a million bytes (the simulator's hostile-name modes,
// issue #16) and backs it up. What status, history and devices print,
// /metrics and a command hook's BACKUPD_DEVICE hold none of those bytes:
// no faked line, no escape sequence, valid UTF-8, a name of at most 255
// bytes; the hook runs; history.db does not grow by the name's size.
func TestTortureHostileName(t *testing.T) {
	hookOut := filepath.Join(shortDir(t), "hook")
	r := newRig(t, rigOptions{extra: fmt.Sprintf(`[metrics]
listen = "127.0.0.1:0"
[notify]
events = ["success", "failure"]
[[notify.hook]]
name = "record"
command = ["/bin/sh", "-c", "printf '%%s' \"$BACKUPD_DEVICE\" > %s"]
`, hookOut)})
	d := r.startDaemon(t)
	r.settled(t)
	metricsURL := "http://" + logged(t, d, `"addr":"([0-9.:]+)"[^\n]*"message":"serving metrics`) + "/metrics"
	db := filepath.Join(r.state, "history.db")
	tally := tortureTally{Suite: "hostile device name"}
	for _, mode := range sim.HostileNames() {
		tally.Trials++
		ok := t.Run(mode, func(t *testing.T) {
			r.ctl(t, "unplug", r.udid)
			r.ctl(t, "fault", r.udid, "hostile-name="+mode)
			r.ctl(t, "plug", r.udid)
			r.settled(t)
			os.Remove(hookOut)
			before := fileSize(t, db)
			if code, run, out := r.backup(t, false); code != exitOK {
				t.Fatalf("backup: exit %d, run %+v\n%.2000q", code, run, out)
			}
			var printed []string
			for _, args := range [][]string{{"status"}, {"history", r.udid}, {"devices"}} {
				out, errOut, code := cli(t, r.bin, append(args, "--config", r.config)...)
				if code != exitOK {
					t.Fatalf("%s: exit %d\n%.2000q", args[0], code, errOut)
				}
				printed = append(printed, args[0]+"\x00"+out+errOut)
			}
			printed = append(printed, "metrics\x00"+get(t, metricsURL))
			printed = append(printed, "Info.plist Device Name\x00"+infoPlistName(t, filepath.Join(r.backups, r.udid, "Info.plist")))
			waitFor(t, "the hook", func() bool { _, err := os.Stat(hookOut); return err == nil })
			time.Sleep(100 * time.Millisecond) // the hook's shell finishes its write
			hook, err := os.ReadFile(hookOut)
			if err != nil {
				t.Fatal(err)
			}
			printed = append(printed, "hook BACKUPD_DEVICE\x00"+string(hook))
			if len(hook) > 255 || !strings.HasPrefix(string(hook), "Anna's iPhone") {
				t.Errorf("the hook got a name of %d bytes: %.80q", len(hook), hook)
			}
			for _, p := range printed {
				what, text, _ := strings.Cut(p, "\x00")
				if bad := hostileBytes(text); bad != "" {
					t.Errorf("%s prints %s:\n%.3000q", what, bad, text)
				}
			}
			if grew := fileSize(t, db) - before; grew > 512<<10 {
				t.Errorf("history.db grew by %d KiB for one run", grew>>10)
			}
		})
		if !ok {
			tally.Failures++
		}
	}
	recordTorture(t, tally)
}

// hostileBytes says what in text came from a hostile name unescaped: a
// line the name began, an escape, a carriage return, invalid UTF-8, or a
// run of the huge name longer than any name may be.
func hostileBytes(text string) string {
	switch {
	case !utf8.ValidString(text):
		return "invalid UTF-8"
	case strings.ContainsAny(text, "\r\x1b\x07"):
		return "a CR, ESC or BEL"
	case regexp.MustCompile(`(?m)^\s*FAKE LINE`).MatchString(text):
		return "the name's fake line"
	case strings.Contains(text, strings.Repeat("x", 256)):
		return "more than 255 bytes of the name"
	}
	return ""
}

// logged waits for the daemon's log to match re and returns its first
// group.
func logged(t *testing.T, d *proc, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	waitFor(t, "the log to match "+re, func() bool {
		m = rx.FindStringSubmatch(d.out.String())
		return m != nil
	})
	return m[1]
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(b)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// infoPlistName is the Device Name in a backup's Info.plist.
func infoPlistName(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	if err := wire.Decode(b, &info); err != nil {
		t.Fatal(err)
	}
	name, _ := info["Device Name"].(string)
	if !strings.HasPrefix(name, "Anna's iPhone") {
		t.Errorf("Info.plist Device Name %.80q, want the phone's", name)
	}
	return name
}
