// Package api holds the JSON types of backupd's local API, shared by the
// daemon that serves them and the client the CLI uses. It depends on the
// standard library and package cause only, so the CLI can speak the API
// without linking the daemon.
//
// The API is HTTP over a unix socket (<state_dir>/backupd.sock). Every
// path starts with /v1/; a change that breaks a client gets /v2/.
//
//	GET  /v1/health                      Health
//	GET  /v1/devices                     []Device
//	GET  /v1/devices/{udid}              Device
//	GET  /v1/devices/{udid}/runs         RunsPage (query: cursor, limit, outcome)
//	POST /v1/devices/{udid}/backup       BackupRequest → BackupResponse (202)
//	POST /v1/devices/{udid}/verify       VerifyRequest → VerifyResponse
//	POST /v1/devices/{udid}/encryption   EncryptionRequest → EncryptionResponse
//	POST /v1/devices/{udid}/restore      RestoreRequest → RestoreResponse (202)
//	GET  /v1/devices/{udid}/versions     VersionsResponse (any phone with backups; query: from)
//	POST /v1/verify                      VerifyRequest → VerifyResponse (every device)
//	GET  /v1/runs                        RunsPage (query: see RunsQuery)
//	GET  /v1/runs/{id}                   Run
//	GET  /v1/events                      text/event-stream of Event
//
// Errors come back with a 4xx or 5xx status and an Error body.
package api

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/backupd/backupd/cause"
)

// Prefix starts every path of this version of the API.
const Prefix = "/v1"

// SocketName is the file name of the API socket inside state_dir.
const SocketName = "backupd.sock"

// VersionHeader is the response header every answer of the daemon
// carries its version in (the one `backupd version` prints), so that a
// client can tell it talks to an older or newer daemon: after an upgrade
// the old one may still run.
const VersionHeader = "Backupd-Version"

// State is where a device stands in the daemon's eyes.
type State string

// States. A device walks settling → checking → (queued → backing_up) →
// succeeded, failed or skipped; waiting and up_to_date are the pauses in
// between, and absent is a device the history knows that is not connected.
const (
	StateAbsent    State = "absent"     // not connected
	StateSettling  State = "settling"   // attached, waiting out the settle time
	StateChecking  State = "checking"   // trust, facts and policy are being checked
	StateWaiting   State = "waiting"    // a condition must change first (Cause says which; NextAttempt when)
	StateQueued    State = "queued"     // due, waiting for a backup slot (max_concurrent)
	StateBackingUp State = "backing_up" // a backup runs (Progress)
	// StateAwaitingPasscode: the backup has started and the iPhone asks
	// for its passcode before it sends anything (iOS 16.1 and later).
	StateAwaitingPasscode State = "awaiting_passcode"
	StateSucceeded        State = "succeeded"  // the latest backup succeeded
	StateFailed           State = "failed"     // the latest backup failed (Cause)
	StateSkipped          State = "skipped"    // policy decided against a backup (Cause)
	StateUpToDate         State = "up_to_date" // backed up less than min_interval ago
	StateIgnored          State = "ignored"    // the configuration excludes it (deny list, Wi-Fi off)
	// StateRestoring: a restore runs (Progress: what the phone has been
	// sent); its safety backup shows as backing_up.
	StateRestoring State = "restoring"
	// StateRestored: the latest restore succeeded; the iPhone restarts
	// unless asked not to.
	StateRestored State = "restored"
)

// Outcomes of a run, as the history stores them.
const (
	OutcomeRunning     = "running"
	OutcomeSuccess     = "success"
	OutcomeFailed      = "failed"
	OutcomeSkipped     = "skipped"
	OutcomeInterrupted = "interrupted"
)

// Triggers of a run.
const (
	TriggerPlugIn   = "plug_in"
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
)

// Progress is how far a running backup has come.
type Progress struct {
	// Percent is the device's own estimate of the whole backup, 0..100.
	Percent float64 `json:"percent"`
	// Bytes and Files count the file content received so far.
	Bytes int64 `json:"bytes"`
	Files int64 `json:"files"`
	// BytesPerSecond is the average rate since the transfer started.
	BytesPerSecond float64 `json:"bytes_per_second,omitempty"`
	// ETASeconds estimates the time left from the rate of Percent; 0 when
	// there is too little to go on.
	ETASeconds float64 `json:"eta_seconds,omitempty"`
	// Started is when the backup started.
	Started time.Time `json:"started,omitzero"`
	// ThinkingSince, when set, is since when the phone has been quiet at
	// a point where real iPhones think for minutes (preparing its data,
	// reading a manifest, applying a restore): normal, and the phone
	// must stay connected. Zero while it sends.
	ThinkingSince time.Time `json:"thinking_since,omitzero"`
}

// Run is one backup attempt, or one decision not to make one.
type Run struct {
	ID         uint64    `json:"id"`
	UDID       string    `json:"udid"`
	DeviceName string    `json:"device_name,omitempty"`
	IOSVersion string    `json:"ios_version,omitempty"`
	Trigger    string    `json:"trigger"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"`
	Outcome    string    `json:"outcome"`
	// Cause, with its Summary and Fix in plain words (package cause),
	// says why the run did not succeed, or what went wrong on the way.
	Cause           cause.Code `json:"cause,omitempty"`
	Summary         string     `json:"summary,omitempty"`
	Fix             string     `json:"fix,omitempty"`
	DeviceErrorCode int        `json:"device_error_code,omitempty"`
	DeviceErrorText string     `json:"device_error_text,omitempty"`
	Errno           string     `json:"errno,omitempty"`
	Bytes           int64      `json:"bytes,omitempty"`
	Files           int64      `json:"files,omitempty"`
	Kind            string     `json:"kind,omitempty"` // KindFull, KindIncremental or KindRestore
	Encrypted       bool       `json:"encrypted,omitempty"`
	Link            string     `json:"link,omitempty"`
	LinkSpeed       uint64     `json:"link_speed,omitempty"`
	Verify          string     `json:"verify,omitempty"`
	VersionPath     string     `json:"version_path,omitempty"`
	// Source and Version name the backup a restore put on the phone:
	// the phone it is of and its name as GET .../versions gives it.
	Source  string `json:"source,omitempty"`
	Version string `json:"version,omitempty"`
	Note    string `json:"note,omitempty"`
	// UnreadableCount counts the files the iPhone could not read when it
	// sent them (a kept backup holds them as what arrived: nothing);
	// Unreadable names them, or the first of them.
	UnreadableCount int              `json:"unreadable_count,omitempty"`
	Unreadable      []UnreadableFile `json:"unreadable,omitempty"`
}

// UnreadableFile is a file the iPhone could not read during a backup.
type UnreadableFile struct {
	// Name is the iPhone's own name for it, "Domain/path".
	Name string `json:"name,omitempty"`
	// Path is where it is in the backup, as the device named it.
	Path    string `json:"path,omitempty"`
	Message string `json:"message,omitempty"`
}

// Kinds of run.
const (
	KindFull        = "full"
	KindIncremental = "incremental"
	KindRestore     = "restore"
)

// RunsPage is a page of runs, newest first.
type RunsPage struct {
	Runs []Run `json:"runs"`
	// Next is the cursor of the next, older page; empty on the last.
	Next string `json:"next,omitempty"`
}

// Device is what the daemon knows about one iPhone: its live state when
// connected, and its history.
type Device struct {
	UDID        string `json:"udid"`
	Name        string `json:"name,omitempty"`
	ProductType string `json:"product_type,omitempty"`
	IOSVersion  string `json:"ios_version,omitempty"`

	Connected bool   `json:"connected"`
	Link      string `json:"link,omitempty"` // USB or Network
	LinkSpeed uint64 `json:"link_speed,omitempty"`
	// State, since StateSince; Cause (with Summary and Fix) says why a
	// device waits, was skipped or failed; Note adds the particulars.
	State       State      `json:"state"`
	StateSince  time.Time  `json:"state_since,omitzero"`
	Cause       cause.Code `json:"cause,omitempty"`
	Summary     string     `json:"summary,omitempty"`
	Fix         string     `json:"fix,omitempty"`
	Note        string     `json:"note,omitempty"`
	NextAttempt time.Time  `json:"next_attempt,omitzero"`
	Progress    *Progress  `json:"progress,omitempty"`
	// BatteryLevel is in percent, nil when unknown.
	BatteryLevel *int `json:"battery_level,omitempty"`
	Charging     bool `json:"charging,omitempty"`
	// WillEncrypt: the iPhone encrypts its backups.
	WillEncrypt bool `json:"will_encrypt,omitempty"`
	// RecentFlaps counts the cable's recent disconnects.
	RecentFlaps int `json:"recent_flaps,omitempty"`

	// Transitions are the device's latest state changes since the daemon
	// started, oldest first (a few dozen at most).
	Transitions []Transition `json:"transitions,omitempty"`

	FirstSeen   time.Time `json:"first_seen,omitzero"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	LastAttempt *Run      `json:"last_attempt,omitempty"`
	// LastSuccess is when the latest successful backup ended.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// Trend is set when the latest attempts failed three or more times
	// in a row with the same cause, with the next step to try.
	Trend *Trend `json:"trend,omitempty"`
}

// Trend is a run of failures with one cause, from the history.
type Trend struct {
	Cause cause.Code `json:"cause"`
	Count int        `json:"count"`
	// NextStep is the rung of the fix ladder to try next (replug,
	// other_port_or_cable, restart_phone, re_pair), or own_fix for a
	// cause the ladder does not help.
	NextStep string `json:"next_step"`
	// Text says it all: "disconnected 3 times in a row: unplug the
	// iPhone and plug it in again".
	Text string `json:"text"`
}

// Transition is one change of a device's state.
type Transition struct {
	At    time.Time  `json:"at"`
	State State      `json:"state"`
	Cause cause.Code `json:"cause,omitempty"`
	Note  string     `json:"note,omitempty"`
}

// Usbmuxd is the daemon's view of usbmuxd.
type Usbmuxd struct {
	Address   string     `json:"address"`
	Connected bool       `json:"connected"`
	Error     string     `json:"error,omitempty"`
	Cause     cause.Code `json:"cause,omitempty"`
	// Summary and Fix are Cause in words.
	Summary string `json:"summary,omitempty"`
	Fix     string `json:"fix,omitempty"`
}

// Health says whether the daemon is up and what it is doing.
type Health struct {
	// Status is "ok", or "degraded" while usbmuxd cannot be reached.
	Status         string    `json:"status"`
	Version        string    `json:"version,omitempty"`
	PID            int       `json:"pid"`
	Started        time.Time `json:"started"`
	UptimeSeconds  float64   `json:"uptime_seconds"`
	StateDir       string    `json:"state_dir"`
	BackupDir      string    `json:"backup_dir"`
	Usbmuxd        Usbmuxd   `json:"usbmuxd"`
	Connected      int       `json:"devices_connected"`
	BackupsRunning int       `json:"backups_running"`
	MaxConcurrent  int       `json:"max_concurrent"`
	// Goroutines is the daemon's goroutine count, for leak checks.
	Goroutines int `json:"goroutines"`
}

// BackupRequest asks for a backup now (POST /v1/devices/{udid}/backup).
// Manual backups ignore min_interval and quiet hours; the battery and
// free space checks still apply.
type BackupRequest struct {
	// Full asks the device for a full backup instead of the changes.
	Full bool `json:"full,omitempty"`
}

// BackupResponse acknowledges a BackupRequest: the backup was started;
// follow it on /v1/events or /v1/devices/{udid}.
type BackupResponse struct {
	UDID    string `json:"udid"`
	Message string `json:"message"`
}

// Error is the body of every error response.
type Error struct {
	// Code is one of the ErrorCode constants.
	Code    string `json:"code"`
	Message string `json:"error"`
}

// Error codes.
const (
	ErrBadRequest   = "bad_request"
	ErrNotFound     = "not_found"     // no such device or run
	ErrNotConnected = "not_connected" // the device is known but not connected
	ErrBusy         = "busy"          // a backup of this device is already under way
	ErrRefused      = "refused"       // the configuration excludes the device
	ErrUnavailable  = "unavailable"   // the daemon is stopping
	ErrInternal     = "internal"
)

// EventType says what an Event reports.
type EventType string

// Event types.
const (
	// EventState: a device changed state (State, Cause, Note).
	EventState EventType = "state"
	// EventProgress: a running backup advanced (Progress).
	EventProgress EventType = "progress"
	// EventRun: a run record was written (Run): begun, finished, skipped
	// or found interrupted at start-up.
	EventRun EventType = "run"
	// EventUsbmuxd: the connection to usbmuxd came or went (Usbmuxd).
	EventUsbmuxd EventType = "usbmuxd"
)

// Event is one message of the live stream (GET /v1/events, server-sent
// events: "id: <Seq>", "event: <Type>", "data: <Event as JSON>").
type Event struct {
	// Seq counts events from 1 since the daemon started.
	Seq      uint64     `json:"seq"`
	Time     time.Time  `json:"time"`
	Type     EventType  `json:"type"`
	UDID     string     `json:"udid,omitempty"`
	Name     string     `json:"name,omitempty"`
	State    State      `json:"state,omitempty"`
	Cause    cause.Code `json:"cause,omitempty"`
	Summary  string     `json:"summary,omitempty"`
	Note     string     `json:"note,omitempty"`
	Progress *Progress  `json:"progress,omitempty"`
	Run      *Run       `json:"run,omitempty"`
	Usbmuxd  *Usbmuxd   `json:"usbmuxd,omitempty"`
}

// RunsQuery filters GET /v1/runs. Zero fields do not filter.
type RunsQuery struct {
	UDID     string
	Outcomes []string
	Causes   []cause.Code
	// Since and Until bound the runs' start: Since inclusive, Until
	// exclusive.
	Since, Until time.Time
	// Limit is the page size (the server's default when 0).
	Limit int
	// Cursor is the Next of the page before.
	Cursor string
}

// Values encodes q as URL query parameters; ParseRunsQuery reads them.
func (q RunsQuery) Values() url.Values {
	v := url.Values{}
	if q.UDID != "" {
		v.Set("udid", q.UDID)
	}
	for _, o := range q.Outcomes {
		v.Add("outcome", o)
	}
	for _, c := range q.Causes {
		v.Add("cause", string(c))
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	return v
}

// ParseRunsQuery reads the parameters Values writes. Outcome and cause may
// repeat or be comma-separated.
func ParseRunsQuery(v url.Values) (RunsQuery, error) {
	q := RunsQuery{UDID: v.Get("udid"), Cursor: v.Get("cursor")}
	q.Outcomes = splitList(v["outcome"])
	for _, c := range splitList(v["cause"]) {
		q.Causes = append(q.Causes, cause.Code(c))
	}
	for _, o := range q.Outcomes {
		switch o {
		case OutcomeRunning, OutcomeSuccess, OutcomeFailed, OutcomeSkipped, OutcomeInterrupted:
		default:
			return q, &Error{Code: ErrBadRequest, Message: "unknown outcome " + strconv.Quote(o)}
		}
	}
	var err error
	if q.Since, err = parseTime(v.Get("since")); err != nil {
		return q, &Error{Code: ErrBadRequest, Message: "since: " + err.Error()}
	}
	if q.Until, err = parseTime(v.Get("until")); err != nil {
		return q, &Error{Code: ErrBadRequest, Message: "until: " + err.Error()}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, &Error{Code: ErrBadRequest, Message: "limit " + strconv.Quote(s) + " is not a count"}
		}
		q.Limit = n
	}
	return q, nil
}

// Error makes *Error an error, so ParseRunsQuery and the client can
// return it.
func (e *Error) Error() string { return e.Message }

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// VerifyRequest asks the daemon to re-verify backups on disk
// (POST /v1/devices/{udid}/verify for one device, POST /v1/verify for
// every device with a backup in backup_dir).
type VerifyRequest struct {
	// Versions verifies the older versions too, not only the latest.
	Versions bool `json:"versions,omitempty"`
	// Password, when set, checks encrypted backups as deeply as plain
	// ones: Manifest.db decrypts and every file it lists decrypts to its
	// size. A backup it does not open fails with cause
	// wrong_backup_password. The daemon never logs it.
	Password string `json:"password,omitempty"`
}

// VerifyResponse lists one result per backup verified: each device's
// latest first, then its versions, newest first.
type VerifyResponse struct {
	Backups []VerifyResult `json:"backups"`
}

// MaxVerifyProblems bounds VerifyResult.Problems; MoreProblems counts the
// rest.
const MaxVerifyProblems = 5

// VerifyResult is what verifying one backup found.
type VerifyResult struct {
	UDID string `json:"udid"`
	Name string `json:"name,omitempty"`
	// Path is the backup's directory; Version its name under
	// versions/<UDID>/, empty for the latest.
	Path    string    `json:"path"`
	Latest  bool      `json:"latest"`
	Version string    `json:"version,omitempty"`
	Time    time.Time `json:"time,omitzero"` // when the backup was completed
	// OK: the backup verifies.
	OK        bool `json:"ok"`
	Encrypted bool `json:"encrypted,omitempty"`
	// Files is the number of files Manifest.db lists (or, for an
	// encrypted backup, those found on disk); Size the bytes they take.
	Files int   `json:"files"`
	Size  int64 `json:"size"`
	// Problems are why it does not verify (at most MaxVerifyProblems);
	// Error is set when the disk itself could not be read.
	Problems     []string   `json:"problems,omitempty"`
	MoreProblems int        `json:"more_problems,omitempty"`
	Error        string     `json:"error,omitempty"`
	Cause        cause.Code `json:"cause,omitempty"`
	Checked      []string   `json:"checked,omitempty"`
	NotChecked   []string   `json:"not_checked,omitempty"`
}

// EncryptionRequest turns a device's backup encryption on or off
// (POST /v1/devices/{udid}/encryption). Password is the new one when
// enabling and the current one when disabling; the daemon never logs it.
type EncryptionRequest struct {
	Enable   bool   `json:"enable"`
	Password string `json:"password"`
}

// EncryptionResponse is how the iPhone answered: OK, or refused with a
// Cause (wrong_backup_password when the current password was wrong).
type EncryptionResponse struct {
	UDID      string     `json:"udid"`
	Name      string     `json:"name,omitempty"`
	OK        bool       `json:"ok"`
	Encrypted bool       `json:"encrypted"` // the setting now
	Cause     cause.Code `json:"cause,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Fix       string     `json:"fix,omitempty"`
	Message   string     `json:"message,omitempty"`
}

// RestoreRequest asks for a kept backup to be put back on a connected
// iPhone (POST /v1/devices/{udid}/restore). The daemon answers once the
// restore is accepted; follow it on /v1/events: a run of kind restore
// ends it. Password goes to the phone only: the daemon never logs or
// records it.
type RestoreRequest struct {
	// Source is the phone whose backup to restore; empty means the
	// phone restored to.
	Source string `json:"source,omitempty"`
	// From is "latest" (or empty), a version's name as VersionInfo.ID
	// gives it, or an RFC 3339 date or time: the newest kept backup at or
	// before it.
	From     string `json:"from,omitempty"`
	Password string `json:"password,omitempty"`
	// SafetyBackup backs the phone up first and keeps that backup as a
	// version marked safety; nil means true.
	SafetyBackup *bool `json:"safety_backup,omitempty"`
	// SkipApps leaves the backup's apps out: the phone does not
	// reinstall them.
	SkipApps bool `json:"skip_apps,omitempty"`
	// NoReboot asks the phone not to restart when done.
	NoReboot bool `json:"no_reboot,omitempty"`
}

// WantsSafetyBackup is SafetyBackup with its default.
func (r RestoreRequest) WantsSafetyBackup() bool { return r.SafetyBackup == nil || *r.SafetyBackup }

// RestoreResponse acknowledges a RestoreRequest: the restore was
// accepted and names the backup it will restore.
type RestoreResponse struct {
	UDID    string `json:"udid"`
	Name    string `json:"name,omitempty"`
	Source  string `json:"source"`
	Version string `json:"version"`
	// SafetyBackup: a safety backup runs first.
	SafetyBackup bool   `json:"safety_backup"`
	Message      string `json:"message"`
}

// VersionsResponse lists the kept backups of one phone, newest first
// (GET /v1/devices/{udid}/versions).
type VersionsResponse struct {
	UDID     string        `json:"udid"`
	Name     string        `json:"name,omitempty"`
	Versions []VersionInfo `json:"versions"`
}

// VersionInfo is one kept backup.
type VersionInfo struct {
	// ID is the name a restore's From takes.
	ID string `json:"id"`
	// Time is when the backup was completed.
	Time   time.Time `json:"time"`
	Latest bool      `json:"latest"`
	Path   string    `json:"path"`
	// Size and Files count the backed-up files' content.
	Size      int64 `json:"size"`
	Files     int   `json:"files"`
	Encrypted bool  `json:"encrypted"`
	// Safety: backupd took it just before a restore.
	Safety bool `json:"safety"`
	// Verified: the backup verifies; Problems say why not.
	Verified bool     `json:"verified"`
	Problems []string `json:"problems,omitempty"`
}
