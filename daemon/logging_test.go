package daemon

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	ios "github.com/danielpaulus/go-ios/ios"
	"github.com/danielpaulus/go-ios/ios/golog"

	"github.com/backupd/backupd/usbmux"
)

// pairRecordPlist is what a pair record looks like on the wire: the
// secrets the log must never show.
const pairRecordPlist = `<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>
<key>HostPrivateKey</key><data>LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFb3dJQkFBS0NBUUVBdGVzdGtleQ==</data>
<key>EscrowBag</key><data>c2VjcmV0ZXNjcm93YmFnc2VjcmV0ZXNjcm93YmFnc2VjcmV0ZXNjcm93YmFn</data>
<key>RootPrivateKey</key><data>LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpyb290a2V5</data>
</dict></plist>`

func TestRedaction(t *testing.T) {
	var buf bytes.Buffer
	zl, err := NewLogger(&buf, LogJSON, "debug")
	if err != nil {
		t.Fatal(err)
	}
	log := SlogLogger(zl, "test")
	pem := "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAtestkey\n-----END RSA PRIVATE KEY-----"
	// go-ios's own warning, as pair_read.go writes it.
	log.Warn("failed decoding pair record plist", "module", "usbmux", "bytes", hex.EncodeToString([]byte(pairRecordPlist)), "error", errors.New("plist: bad"))
	log.Info("innocent names", "blob", hex.EncodeToString([]byte(pairRecordPlist)), "key", pem, "raw", []byte("secret bytes"))
	log.Info("secret names", "HostPrivateKey", "abc", "escrow_bag", "def", slog.Group("rec", "root-private-key", "ghi"))
	log.Info("a pair record value", "record", &usbmux.PairRecord{HostID: "X"})
	log.Info("an error quoting a key", "err", fmt.Errorf("decode: %s", pem))
	log.With("token", "tok-123").Info("pre-attached")
	log.Info("what stays", "udid", "00008110-000A11112222801E", "bytes", int64(123456), "files", 7, "path", "/srv/backups/x")

	out := buf.String()
	for _, secret := range []string{
		hex.EncodeToString([]byte(pairRecordPlist))[:64], "PRIVATE KEY", "secret bytes", "abc", "def", "ghi",
		"LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVkt", "tok-123", `"HostID":"X"`,
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q:\n%s", secret, out)
		}
	}
	for _, kept := range []string{`"udid":"00008110-000A11112222801E"`, `"bytes":123456`, `"files":7`, `"path":"/srv/backups/x"`,
		`"module":"usbmux"`, `"component":"test"`, `"error":"plist: bad"`} {
		if !strings.Contains(out, kept) {
			t.Errorf("the log lost %s:\n%s", kept, out)
		}
	}
	// Every line is JSON.
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not JSON: %s", line)
		}
	}
}

func TestLoggerFormatsAndLevels(t *testing.T) {
	var buf bytes.Buffer
	zl, err := NewLogger(&buf, LogConsole, "warn")
	if err != nil {
		t.Fatal(err)
	}
	log := SlogLogger(zl, "usbmux")
	log.Info("hidden")
	log.Warn("shown", "udid", "abc")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "shown") || !strings.Contains(out, "udid=abc") || strings.HasPrefix(out, "{") {
		t.Errorf("console output:\n%s", out)
	}
	if _, err := NewLogger(&buf, "xml", "info"); err == nil {
		t.Error("format xml accepted")
	}
	if _, err := NewLogger(&buf, LogJSON, "chatty"); err == nil {
		t.Error("level chatty accepted")
	}
}

// TestGoIOSLogsRouted: once routed, go-ios's log lines land in ours, at
// its levels, with key material screened.
func TestGoIOSLogsRouted(t *testing.T) {
	var buf bytes.Buffer
	zl, err := NewLogger(&buf, LogJSON, "trace")
	if err != nil {
		t.Fatal(err)
	}
	RouteGoIOSLogs(zl)
	t.Cleanup(func() { ios.SetLogger(nil) })
	golog.Warn("failed decoding pair record plist", "module", "pair", "bytes", hex.EncodeToString([]byte(pairRecordPlist)))
	golog.Trace("rcv tls payload", "module", "conn", "payload", hex.EncodeToString([]byte(pairRecordPlist)))
	out := buf.String()
	if !strings.Contains(out, `"component":"go-ios"`) || !strings.Contains(out, `"level":"warn"`) || !strings.Contains(out, `"level":"trace"`) {
		t.Errorf("go-ios lines not routed:\n%s", out)
	}
	if strings.Contains(out, hex.EncodeToString([]byte(pairRecordPlist))[:64]) {
		t.Errorf("go-ios logged the pair record:\n%s", out)
	}
}

// TestLogTimesHaveMilliseconds: the debug log times phases that take a
// few milliseconds, so both formats show them.
func TestLogTimesHaveMilliseconds(t *testing.T) {
	msJSON := regexp.MustCompile(`"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)"`)
	msConsole := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} `)
	for _, tt := range []struct {
		format LogFormat
		want   *regexp.Regexp
	}{{LogJSON, msJSON}, {LogConsole, msConsole}} {
		var buf bytes.Buffer
		zl, err := NewLogger(&buf, tt.format, "debug")
		if err != nil {
			t.Fatal(err)
		}
		derived := zl.With().Str("component", "x").Logger()
		derived.Debug().Msg("derived")
		SlogLogger(zl, "backup").Debug("through slog")
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if !tt.want.MatchString(line) {
				t.Errorf("%s: no time with milliseconds in %q", tt.format, line)
			}
			if n := strings.Count(line, `"time":`); tt.format == LogJSON && n != 1 {
				t.Errorf("%d time fields in %q", n, line)
			}
		}
	}
}
