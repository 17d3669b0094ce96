//go:build unix

package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/usbmux"
)

// TestTorturePermissions checks what the daemon leaves on disk and in its
// logs (issue #8): the API socket is 0660, history.db and every other
// file under state_dir 0600 and its directories 0700 (state_dir itself
// 0750, so the socket's group can reach it), even under a umask of 0;
// and neither the logs at trace level, console or JSON, nor any file under
// state_dir hold the pair record's keys or certificates in any common
// spelling.
func TestTorturePermissions(t *testing.T) {
	e := newEnv(t, 1)
	b, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.config, strings.Replace(string(b), `log_level = "debug"`, `log_level = "trace"`, 1))
	e.setConfig(t, "policy", `min_interval = "0s"`)
	c := e.api(t)
	failures := 0

	// A umask of 0 shows the daemon sets its modes itself rather than
	// relying on the one it was started with.
	runDaemon := func(format string) *proc {
		old := syscall.Umask(0)
		defer syscall.Umask(old)
		return start(t, filepath.Join(e.bin, "backupd"), "run", "--log-format", format, "--config", e.config)
	}

	jsonRun := runDaemon("json")
	var udid string
	waitFor(t, "the plug-in backup", func() bool {
		devs, err := c.Devices(ctxFor(t, 5*time.Second))
		if err != nil || len(devs) != 1 || devs[0].LastAttempt == nil || devs[0].LastAttempt.Outcome == api.OutcomeRunning {
			return false
		}
		udid = devs[0].UDID
		return true
	})
	failures += checkStateModes(t, e.stateDir())
	if code := jsonRun.stop(t); code != exitOK {
		t.Fatalf("backupd run exited %d", code)
	}

	consoleRun := runDaemon("console")
	// The new daemon must see the phone (it settles first) before a
	// backup of it can be asked for.
	waitFor(t, "the daemon to see the phone", func() bool {
		d, err := c.Device(ctxFor(t, 5*time.Second), udid)
		return err == nil && d.Connected && d.State != api.StateSettling
	})
	if out, errOut, code := cli(t, e.bin, "backup", udid, "--wait", "--config", e.config); code != exitOK {
		t.Fatalf("backup --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	failures += checkStateModes(t, e.stateDir())
	if code := consoleRun.stop(t); code != exitOK {
		t.Fatalf("backupd run exited %d", code)
	}
	if !strings.Contains(jsonRun.out.String(), `"level":"trace"`) && !strings.Contains(jsonRun.out.String(), `"level":"debug"`) {
		t.Fatalf("the JSON log has no trace or debug lines; the check below would prove little:\n%.2000s", jsonRun.out.String())
	}

	// A script reading the JSON log needs each line to be one object
	// with each key once (a repeated "time" is read differently by
	// different parsers).
	for i, line := range strings.Split(strings.TrimSpace(jsonRun.out.String()), "\n") {
		if dup, err := duplicateKey(line); err != nil || dup != "" {
			failures++
			t.Errorf("JSON log line %d: key %q repeated, err %v: %s", i+1, dup, err, line)
		}
	}

	// The secrets: what the simulated usbmuxd holds for this phone, the
	// same record the daemon read to open its lockdown session.
	addr, err := usbmux.ParseAddr("UNIX:" + e.mux)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := usbmux.NewClient(usbmux.Config{Addr: addr}).ReadPairRecord(ctxFor(t, 10*time.Second), udid)
	if err != nil {
		t.Fatalf("read the pair record: %v", err)
	}
	secrets := map[string][]byte{
		"HostPrivateKey":    rec.HostPrivateKey,
		"RootPrivateKey":    rec.RootPrivateKey,
		"HostCertificate":   rec.HostCertificate,
		"DeviceCertificate": rec.DeviceCertificate,
		"RootCertificate":   rec.RootCertificate,
		"EscrowBag":         rec.EscrowBag,
	}
	hay := map[string][]byte{
		"JSON log (trace)":    []byte(jsonRun.out.String()),
		"console log (trace)": []byte(consoleRun.out.String()),
	}
	err = filepath.WalkDir(e.stateDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		hay[path] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	needles := 0
	for name, blob := range secrets {
		if len(blob) == 0 {
			continue
		}
		forms := secretForms(blob)
		needles += len(forms)
		for where, data := range hay {
			for _, f := range forms {
				if bytes.Contains(data, f.needle) {
					failures++
					t.Errorf("%s holds the pair record's %s (%s)", where, name, f.spelling)
					break
				}
			}
		}
	}
	if needles == 0 {
		t.Fatal("the pair record has no keys or certificates to look for")
	}
	recordTorture(t, tortureTally{Suite: "permissions", Trials: 2, Failures: failures,
		Note: fmt.Sprintf("modes checked under umask 0 (json and console runs); %d spellings of 6 pair-record secrets searched in 2 trace logs and %d state files", needles, len(hay)-2)})
}

// duplicateKey returns a key the JSON object in line has twice at its
// top level, or "".
func duplicateKey(line string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", fmt.Errorf("not a JSON object (%v)", err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		key := tok.(string)
		if seen[key] {
			return key, nil
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", err
		}
	}
	return "", nil
}

// checkStateModes checks the modes of everything under stateDir and
// returns the number of files with a wrong one.
func checkStateModes(t *testing.T, stateDir string) int {
	t.Helper()
	bad := 0
	seen := map[string]bool{}
	err := filepath.WalkDir(stateDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(stateDir, path)
		seen[rel] = true
		mode := fi.Mode()
		var want fs.FileMode
		switch {
		case rel == ".":
			want = fs.ModeDir | 0o750
		case rel == api.SocketName:
			want = fs.ModeSocket | 0o660
		case mode.IsDir():
			want = fs.ModeDir | 0o700
		default:
			want = 0o600
		}
		if mode&(fs.ModeType|fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != want {
			bad++
			t.Errorf("%s: mode %v, want %v", path, mode, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"history.db", api.SocketName} {
		if !seen[must] {
			bad++
			t.Errorf("no %s in state_dir %s", must, stateDir)
		}
	}
	return bad
}

// secretForm is one spelling of a secret to look for.
type secretForm struct {
	spelling string
	needle   []byte
}

// secretForms returns the spellings in which a key or certificate could
// end up in a log: a PEM as it is, its DER body raw, in hex (either
// case), in base64 (of the DER, or of the PEM text as encoding/json
// writes []byte) and as Go prints a []byte (decimal). A whole blob
// logged any of these ways contains one of these pieces; pieces of 24
// bytes are long enough never to occur by chance.
func secretForms(blob []byte) []secretForm {
	const piece, step = 24, 32
	var forms []secretForm
	add := func(spelling string, s []byte) { forms = append(forms, secretForm{spelling, s}) }
	der := blob
	if p, _ := pem.Decode(blob); p != nil {
		der = p.Bytes
		// The PEM text's lines, each as it would appear in a log.
		for line := range strings.Lines(string(blob)) {
			if line = strings.TrimSpace(line); len(line) >= 32 && !strings.HasPrefix(line, "-----") {
				add("a line of its PEM", []byte(line))
			}
		}
		addBase64(add, "base64 of its PEM text", blob, piece, step)
	}
	for i := 0; i+piece <= len(der); i += step {
		w := der[i : i+piece]
		add("raw bytes", w)
		add("hex", []byte(hex.EncodeToString(w)))
		add("HEX", []byte(strings.ToUpper(hex.EncodeToString(w))))
		add("Go's %v of []byte", []byte(strings.Trim(fmt.Sprint(w), "[]")))
	}
	addBase64(add, "base64 of its DER", der, piece, step)
	return forms
}

// addBase64 adds pieces of the base64 of data that any base64 encoding of
// data (standard or URL alphabet, padded or not, with or without line
// breaks every 64 characters) holds: spans within one 64-character line,
// starting on a 3-byte boundary of data.
func addBase64(add func(string, []byte), spelling string, data []byte, piece, step int) {
	std := base64.StdEncoding.EncodeToString(data)
	url := base64.URLEncoding.EncodeToString(data)
	n := piece / 3 * 4 // characters for piece bytes
	for i := 0; i+n <= len(std); i += step / 3 * 4 {
		if i/64 != (i+n-1)/64 {
			continue
		}
		add(spelling, []byte(std[i:i+n]))
		if url[i:i+n] != std[i:i+n] {
			add(spelling+" (URL alphabet)", []byte(url[i:i+n]))
		}
	}
}

// TestSecretFormsFindLeaks: the spellings TestTorturePermissions looks
// for catch a key logged in each common way, and not an unrelated one.
func TestSecretFormsFindLeaks(t *testing.T) {
	der := make([]byte, 600)
	for i := range der {
		der[i] = byte(i*7 + i/256)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})
	forms := secretForms(p)
	leaks := map[string]string{
		"PEM in JSON":     strings.ReplaceAll(string(p), "\n", `\n`),
		"raw":             string(der),
		"hex":             fmt.Sprintf("%x", der),
		"HEX":             fmt.Sprintf("%X", der),
		"%v":              fmt.Sprint(der),
		"base64 of DER":   base64.StdEncoding.EncodeToString(der),
		"base64url raw":   base64.RawURLEncoding.EncodeToString(der),
		"base64 of PEM":   base64.StdEncoding.EncodeToString(p),
		"half of the DER": hex.EncodeToString(der[300:]),
	}
	for name, log := range leaks {
		found := false
		for _, f := range forms {
			if bytes.Contains([]byte("x="+log+" y"), f.needle) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("a key logged as %s goes unnoticed", name)
		}
	}
	other := bytes.Repeat([]byte{0x5a}, 600)
	for _, f := range forms {
		if bytes.Contains([]byte(fmt.Sprintf("%x %v %s", other, other, base64.StdEncoding.EncodeToString(other))), f.needle) {
			t.Errorf("an unrelated blob matches %s", f.spelling)
		}
	}
}
