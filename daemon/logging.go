package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	ios "github.com/danielpaulus/go-ios/ios"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// LogFormat is how log lines are written.
type LogFormat string

// Log formats: Console for a person watching a terminal (the foreground),
// JSON for a service manager's journal.
const (
	LogConsole LogFormat = "console"
	LogJSON    LogFormat = "json"
)

// NewLogger returns a zerolog logger writing to w in the given format at
// the given level (trace, debug, info, warn, error; empty means info).
func NewLogger(w io.Writer, format LogFormat, level string) (zerolog.Logger, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	switch format {
	case LogConsole:
		// Colours only for a terminal: escape codes in a file or a pipe
		// are noise.
		f, isFile := w.(*os.File)
		color := isFile && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: consoleTime, NoColor: !color}
	case LogJSON, "":
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q: want console or json", format)
	}
	return zerolog.New(w).Level(lvl).Hook(msTimestamp{}), nil
}

// Log times carry milliseconds: the debug log times the phases of a
// backup (see backup's "phase" lines), most of which take well under a
// second. zerolog's own Timestamp formats through a package variable
// shared by every logger of the process, so the time is added here.
const (
	jsonTime    = "2006-01-02T15:04:05.000Z07:00"
	consoleTime = "2006-01-02 15:04:05.000"
)

type msTimestamp struct{}

func (msTimestamp) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, time.Now().Format(jsonTime))
}

func parseLevel(s string) (zerolog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace":
		return zerolog.TraceLevel, nil
	case "debug":
		return zerolog.DebugLevel, nil
	case "", "info":
		return zerolog.InfoLevel, nil
	case "warn", "warning":
		return zerolog.WarnLevel, nil
	case "error":
		return zerolog.ErrorLevel, nil
	}
	return zerolog.NoLevel, fmt.Errorf("log level %q: want trace, debug, info, warn or error", s)
}

// SlogLogger returns a *slog.Logger that writes into zl, tagged with
// component: usbmux, backup and repo log through slog, and their lines
// land in the daemon's log with its format and level. Values that could
// carry pair record secrets are redacted on the way (see redact).
func SlogLogger(zl zerolog.Logger, component string) *slog.Logger {
	if component != "" {
		zl = zl.With().Str("component", component).Logger()
	}
	return slog.New(redactingHandler{next: zerolog.NewSlogHandler(zl)})
}

// RouteGoIOSLogs sends go-ios's log output into zl. go-ios keeps its
// logger in a package variable, so this is a process-wide setting: main
// calls it once, next to creating the daemon. Until it is called go-ios
// writes to slog.Default, outside the daemon's log.
func RouteGoIOSLogs(zl zerolog.Logger) {
	ios.SetLogger(SlogLogger(zl, "go-ios"))
}

// redactingHandler keeps key material out of the log. Pair records hold
// the host's private key and the escrow bag that unlocks the phone's
// data; none of our code logs them, but go-ios does: on a pair record it
// cannot decode it logs the whole plist in hex ("bytes"), and at trace
// level it dumps TLS payloads. So attributes are screened by name and by
// value before they reach zerolog.
type redactingHandler struct{ next slog.Handler }

func (h redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	// No time: the zerolog logger stamps every line itself (msTimestamp),
	// and a record's time would be a second "time" field.
	out := slog.NewRecord(time.Time{}, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redact(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = redact(a)
	}
	return redactingHandler{next: h.next.WithAttrs(clean)}
}

func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{next: h.next.WithGroup(name)}
}

// secretKeys are attribute names, lower-cased without '_' and '-', whose
// text values are never logged.
func secretKeys() []string {
	return []string{
		"privatekey", "escrow", "pairrecord", "pairingrecord", "certificate",
		"password", "secret", "token", "payload", "bytes",
	}
}

// redacted replaces a value that was screened out.
const redacted = "[redacted]"

// redact returns a with its value replaced when it may hold secrets:
// a secret-sounding name (numbers pass: a byte count is no secret), raw
// bytes, PEM key text, a long hex or base64 blob, or a pair record.
func redact(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = redact(ga)
		}
		return slog.Group(a.Key, clean...)
	}
	switch v.Kind() {
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration, slog.KindTime:
		return slog.Attr{Key: a.Key, Value: v}
	}
	if secretName(a.Key) {
		return slog.String(a.Key, redacted)
	}
	if v.Kind() == slog.KindString {
		if secretText(v.String()) {
			return slog.String(a.Key, redacted)
		}
		return slog.Attr{Key: a.Key, Value: v}
	}
	switch x := v.Any().(type) {
	case error:
		if secretText(x.Error()) {
			return slog.String(a.Key, redacted)
		}
		return slog.Attr{Key: a.Key, Value: v}
	case []byte:
		return slog.String(a.Key, fmt.Sprintf("[%d bytes redacted]", len(x)))
	case fmt.Stringer:
		if secretText(x.String()) {
			return slog.String(a.Key, redacted)
		}
	}
	if t := reflect.TypeOf(v.Any()); t != nil {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if strings.Contains(strings.ToLower(t.Name()), "pairrecord") {
			return slog.String(a.Key, redacted)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func secretName(key string) bool {
	k := strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(key))
	for _, s := range secretKeys() {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// secretText catches key material that arrives under an innocent name:
// PEM text, or a long unbroken run of hex or base64 (a DER key or a plist
// dump is hundreds of characters; a UDID is 40).
func secretText(s string) bool {
	if strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, "BEGIN CERTIFICATE") {
		return true
	}
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '+' || c == '/' || c == '=' {
			run++
			if run >= 128 {
				return true
			}
			continue
		}
		run = 0
	}
	return false
}

// JournalPriorities returns w, or w wrapped so that each JSON log line
// starts with its syslog priority ("<4>" for a warning) when w is the
// stream systemd connected to the journal: journald reads the prefix as
// the line's priority, so `journalctl -u backupd -p warning` shows exactly
// the warnings and errors. journalStream is $JOURNAL_STREAM, the device
// and inode ("dev:ino") of that stream; a w that is not it (a pipe or
// file the output was redirected to) is returned as it is. Only JSON
// lines get the prefix: NewLogger's console format writes through Write,
// unchanged.
func JournalPriorities(w io.Writer, journalStream string) io.Writer {
	if journalStream == "" || !isStream(w, journalStream) {
		return w
	}
	return journalWriter{w}
}

// journalWriter prefixes each line zerolog writes with its priority.
type journalWriter struct{ w io.Writer }

func (j journalWriter) Write(p []byte) (int, error) { return j.w.Write(p) }

// WriteLevel is called by zerolog with one whole event, so the prefix and
// the line go out in one write and lines from concurrent loggers do not
// interleave.
func (j journalWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	line := make([]byte, 0, len(p)+3)
	line = append(line, '<', '0'+syslogPriority(l), '>')
	if _, err := j.w.Write(append(line, p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// syslogPriority maps zerolog's levels to syslog's, as sd-daemon(3) lists
// them: err 3, warning 4, info 6, debug 7.
func syslogPriority(l zerolog.Level) byte {
	switch l {
	case zerolog.PanicLevel:
		return 0 // emerg
	case zerolog.FatalLevel:
		return 2 // crit
	case zerolog.ErrorLevel:
		return 3
	case zerolog.WarnLevel:
		return 4
	case zerolog.DebugLevel, zerolog.TraceLevel:
		return 7
	}
	return 6 // info, and a line without a level
}
