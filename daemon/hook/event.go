// Package hook runs backupd's hooks: a command or a webhook told when a
// backup succeeds, fails or is skipped, when a device is overdue and when
// a backup waits for the iPhone's passcode. Hooks run beside the daemon,
// never in its way: each has a bounded queue that drops its oldest event
// when full, each run or request is bounded in time, and a failing hook
// is logged and forgotten.
//
// The event is the same for both kinds of hook: a command reads it as
// JSON on stdin and as BACKUPD_* environment variables; a webhook
// receives the JSON (or, with body = "text", its Text line alone).
package hook

import (
	"github.com/backupd/backupd/daemon/api"

	"fmt"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is Event's Version. Fields may be added within a version;
// a change that renames or removes one makes a new version.
const SchemaVersion = 1

// Kind is what an event reports.
type Kind string

// Kinds of event.
const (
	// KindSuccess: a backup succeeded.
	KindSuccess Kind = "success"
	// KindFailure: a backup failed (Cause, Summary, Fix say why).
	KindFailure Kind = "failure"
	// KindSkip: a backup was decided against (battery, quiet hours, ...).
	KindSkip Kind = "skip"
	// KindOverdue: a device has had no successful backup for
	// overdue_after.
	KindOverdue Kind = "overdue"
	// KindPasscode: a backup waits for someone to enter the passcode on
	// the iPhone.
	KindPasscode Kind = "passcode"
	// KindInterrupted: backupd stopped while a backup ran. Not in the
	// defaults: it mostly follows a deliberate stop.
	KindInterrupted Kind = "interrupted"
	// KindRestoreSuccess: a restore put a kept backup back on the iPhone
	// (Source and Version say which).
	KindRestoreSuccess Kind = "restore_success"
	// KindRestoreFailure: a restore failed or was cut short (Cause,
	// Summary, Fix say why and what to do).
	KindRestoreFailure Kind = "restore_failure"
)

// AllKinds lists every kind, in the order the documentation gives them.
var AllKinds = []Kind{KindSuccess, KindFailure, KindSkip, KindOverdue, KindPasscode, KindInterrupted, KindRestoreSuccess, KindRestoreFailure}

// DefaultKinds are the kinds a hook receives unless configured otherwise.
var DefaultKinds = []Kind{KindSuccess, KindFailure, KindSkip, KindOverdue, KindPasscode, KindRestoreSuccess, KindRestoreFailure}

// ParseKinds reads event names. nil stays nil (meaning: the default).
func ParseKinds(names []string) ([]Kind, error) {
	if names == nil {
		return nil, nil
	}
	out := make([]Kind, 0, len(names))
	for _, n := range names {
		k := Kind(strings.TrimSpace(n))
		known := false
		for _, a := range AllKinds {
			known = known || a == k
		}
		if !known {
			return nil, fmt.Errorf("%q is not an event; want %s", n, strings.Join(KindNames(AllKinds), ", "))
		}
		out = append(out, k)
	}
	return out, nil
}

// KindNames returns kinds as strings.
func KindNames(kinds []Kind) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = string(k)
	}
	return out
}

// Event is what a hook receives. Its JSON is the documented schema
// (README, "Notifications and metrics"); empty fields are left out.
type Event struct {
	// Version is SchemaVersion.
	Version int       `json:"version"`
	Event   Kind      `json:"event"`
	Time    time.Time `json:"time"`
	// Text is the event in one line for a person: Slack shows it, ntfy
	// with body = "text" sends it alone.
	Text string `json:"text"`
	UDID string `json:"udid"`
	// Device is the device's name ("Anna's iPhone").
	Device string `json:"device,omitempty"`
	// Outcome is the run's outcome: success, failed, skipped or
	// interrupted; empty for overdue and passcode.
	Outcome string `json:"outcome,omitempty"`
	// Cause is a cause code (package cause); Summary and Fix say it in
	// words.
	Cause           string `json:"cause,omitempty"`
	Summary         string `json:"summary,omitempty"`
	Fix             string `json:"fix,omitempty"`
	Note            string `json:"note,omitempty"`
	DeviceErrorCode int    `json:"device_error_code,omitempty"`
	DeviceErrorText string `json:"device_error_text,omitempty"`
	Bytes           int64  `json:"bytes,omitempty"`
	Files           int64  `json:"files,omitempty"`
	// DurationSeconds is how long the run took.
	DurationSeconds float64 `json:"duration_seconds,omitempty"`
	// LastSuccess is when the device's latest successful backup ended.
	LastSuccess time.Time `json:"last_success,omitzero"`
	RunID       uint64    `json:"run_id,omitempty"`
	// Trigger is plug_in, schedule or manual.
	Trigger string `json:"trigger,omitempty"`
	// Source and BackupVersion name the backup a restore put on the
	// iPhone: the phone it is of and its name as `backupd versions`
	// prints it.
	Source        string `json:"source,omitempty"`
	BackupVersion string `json:"backup_version,omitempty"`
	Hostname      string `json:"hostname,omitempty"`
}

// Env returns the event as environment variables for a command hook.
// Every variable is set, empty when the field is.
func (e Event) Env() []string {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	num := func(n int64) string {
		if n == 0 {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	dur := ""
	if e.DurationSeconds > 0 {
		dur = strconv.FormatFloat(e.DurationSeconds, 'f', 3, 64)
	}
	return []string{
		"BACKUPD_EVENT=" + string(e.Event),
		"BACKUPD_TIME=" + ts(e.Time),
		"BACKUPD_TEXT=" + e.Text,
		"BACKUPD_UDID=" + e.UDID,
		"BACKUPD_DEVICE=" + e.Device,
		"BACKUPD_OUTCOME=" + e.Outcome,
		"BACKUPD_CAUSE=" + e.Cause,
		"BACKUPD_SUMMARY=" + e.Summary,
		"BACKUPD_FIX=" + e.Fix,
		"BACKUPD_NOTE=" + e.Note,
		"BACKUPD_DEVICE_ERROR_CODE=" + num(int64(e.DeviceErrorCode)),
		"BACKUPD_DEVICE_ERROR_TEXT=" + e.DeviceErrorText,
		"BACKUPD_BYTES=" + num(e.Bytes),
		"BACKUPD_FILES=" + num(e.Files),
		"BACKUPD_DURATION=" + dur,
		"BACKUPD_LAST_SUCCESS=" + ts(e.LastSuccess),
		"BACKUPD_RUN_ID=" + num(int64(e.RunID)),
		"BACKUPD_TRIGGER=" + e.Trigger,
		"BACKUPD_SOURCE=" + e.Source,
		"BACKUPD_BACKUP_VERSION=" + e.BackupVersion,
		"BACKUPD_HOSTNAME=" + e.Hostname,
	}
}

// MakeText writes Text from the other fields, for a person.
func (e Event) MakeText() string {
	who := e.Device
	if who == "" {
		who = e.UDID
	}
	var b strings.Builder
	b.WriteString(who)
	switch e.Event {
	case KindSuccess:
		b.WriteString(": backup done")
		var parts []string
		if e.Bytes > 0 {
			parts = append(parts, api.FormatBytes(e.Bytes))
		}
		if e.Files > 0 {
			parts = append(parts, strconv.FormatInt(e.Files, 10)+" files")
		}
		if e.DurationSeconds > 0 {
			parts = append(parts, (time.Duration(e.DurationSeconds * float64(time.Second))).Round(time.Second).String())
		}
		if len(parts) > 0 {
			b.WriteString(" (" + strings.Join(parts, ", ") + ")")
		}
	case KindFailure:
		b.WriteString(": backup failed")
	case KindSkip:
		b.WriteString(": backup skipped")
	case KindInterrupted:
		b.WriteString(": backup interrupted")
	case KindRestoreSuccess:
		b.WriteString(": restore done")
		if e.BackupVersion != "" {
			b.WriteString(" from the backup of " + e.BackupVersion)
		}
	case KindRestoreFailure:
		b.WriteString(": restore failed")
	case KindOverdue:
		b.WriteString(": no successful backup")
		if !e.LastSuccess.IsZero() {
			b.WriteString(" since " + e.LastSuccess.Local().Format("2006-01-02 15:04"))
		}
	case KindPasscode:
		b.WriteString(": enter the passcode on the iPhone so the backup can start")
	default:
		b.WriteString(": " + string(e.Event))
	}
	if e.Summary != "" {
		b.WriteString(". " + strings.TrimSuffix(e.Summary, "."))
	}
	if e.Fix != "" && e.Event != KindSuccess && e.Event != KindRestoreSuccess {
		b.WriteString(". " + strings.TrimSuffix(e.Fix, "."))
	}
	b.WriteString(".")
	return b.String()
}
