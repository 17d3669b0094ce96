package store

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/devicestring"
)

// RunID identifies a run. Ids count up from 1 in the order runs were
// created and are never reused, so they are short enough to type.
type RunID uint64

// String returns the id in decimal.
func (id RunID) String() string { return strconv.FormatUint(uint64(id), 10) }

// ParseRunID reads an id written by String.
func ParseRunID(s string) (RunID, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("run id %q: not a run id", s)
	}
	return RunID(n), nil
}

// Trigger is what started a run.
type Trigger string

// Triggers.
const (
	TriggerPlugIn   Trigger = "plug_in"  // the device was plugged in
	TriggerSchedule Trigger = "schedule" // the schedule came round while it was connected
	TriggerManual   Trigger = "manual"   // someone asked for it (CLI or API)
)

func (t Trigger) known() bool {
	switch t {
	case TriggerPlugIn, TriggerSchedule, TriggerManual:
		return true
	}
	return false
}

// Outcome is where a run ended, or running while it has not.
type Outcome string

// Outcomes.
const (
	OutcomeRunning     Outcome = "running"
	OutcomeSuccess     Outcome = "success"
	OutcomeFailed      Outcome = "failed"
	OutcomeSkipped     Outcome = "skipped"     // decided against before it started (policy, battery, too recent)
	OutcomeInterrupted Outcome = "interrupted" // backupd stopped while it ran
)

// final reports whether o is an outcome a finished run may have.
func (o Outcome) final() bool {
	switch o {
	case OutcomeSuccess, OutcomeFailed, OutcomeSkipped, OutcomeInterrupted:
		return true
	}
	return false
}

// Kind says whether a backup copied everything or built on the last one.
type Kind string

// Kinds. Empty when not known, as for a run that was skipped.
const (
	KindFull        Kind = "full"
	KindIncremental Kind = "incremental"
	// KindRestore: the run put a kept backup back on the device (Source
	// and Version say which). It never becomes the device's LastSuccess,
	// which is about backups.
	KindRestore Kind = "restore"
)

// Run is the record of one backup attempt, or of one decision not to make
// one. New fields must be optional (omitempty or omitzero) so that older
// versions of backupd read records with them.
type Run struct {
	ID         RunID   `json:"id"`
	UDID       string  `json:"udid"`
	DeviceName string  `json:"device_name,omitempty"`
	IOSVersion string  `json:"ios_version,omitempty"`
	Trigger    Trigger `json:"trigger"`
	// Start is when the run began; with ID it makes the run's key, so it
	// never changes after BeginRun.
	Start time.Time `json:"start"`
	// End is when the run ended; zero while it runs. For a run found
	// interrupted it is when backupd found it, not when it stopped.
	End     time.Time `json:"end,omitzero"`
	Outcome Outcome   `json:"outcome"`
	// Cause says why the run did not succeed (or what went wrong on the
	// way for a success, such as slow_link). Empty for a clean success.
	Cause cause.Code `json:"cause,omitempty"`
	// DeviceErrorCode and DeviceErrorText are the device's own ErrorCode
	// and ErrorDescription, when it gave them.
	DeviceErrorCode int    `json:"device_error_code,omitempty"`
	DeviceErrorText string `json:"device_error_text,omitempty"`
	// Errno is the text of the system error behind the cause, if any
	// ("no space left on device").
	Errno     string `json:"errno,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	Files     int64  `json:"files,omitempty"`
	Kind      Kind   `json:"kind,omitempty"`
	Encrypted bool   `json:"encrypted,omitempty"`
	// Link is the connection type usbmuxd reported ("USB", "Network") and
	// LinkSpeed its speed in bits per second, 0 when not reported.
	Link      string `json:"link,omitempty"`
	LinkSpeed uint64 `json:"link_speed,omitempty"`
	// Verify is the result of verifying the backup, in words.
	Verify string `json:"verify,omitempty"`
	// VersionPath is where the backup this run made was kept.
	VersionPath string `json:"version_path,omitempty"`
	// Source and Version name the backup a restore (KindRestore) put on
	// the device: the phone it is of and its name as `backupd versions`
	// prints it.
	Source  string `json:"source,omitempty"`
	Version string `json:"version,omitempty"`
	// Note is free text, such as "skipped: recent".
	Note string `json:"note,omitempty"`
	// UnreadableCount counts the files the iPhone could not read when it
	// sent them; Unreadable lists them, or the first
	// MaxUnreadableRecorded of them.
	UnreadableCount int              `json:"unreadable_count,omitempty"`
	Unreadable      []UnreadableFile `json:"unreadable,omitempty"`
}

// SetError fills r's cause and the details kept beside it from err, using
// cause.Classify; a nil err clears them.
func (r *Run) SetError(err error) {
	r.Cause, r.DeviceErrorCode, r.DeviceErrorText, r.Errno = cause.None, 0, "", ""
	c := cause.Classify(err)
	if c == nil {
		return
	}
	r.Cause = c.Code
	r.DeviceErrorCode = c.DeviceErrorCode
	r.DeviceErrorText = c.DeviceErrorText
	if c.Errno != 0 {
		r.Errno = c.Errno.Error()
	}
}

// RunRef points at one run of a device.
type RunRef struct {
	ID RunID `json:"id"`
	// Time is the run's start for Device.LastAttempt and its end for
	// Device.LastSuccess: when the latest backup was made.
	Time time.Time `json:"time"`
}

// Device is what the history knows about one device.
type Device struct {
	UDID        string    `json:"udid"`
	Name        string    `json:"name,omitempty"`
	ProductType string    `json:"product_type,omitempty"`
	IOSVersion  string    `json:"ios_version,omitempty"`
	FirstSeen   time.Time `json:"first_seen,omitzero"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	// LastAttempt is the device's latest run, skipped ones included, so
	// that status can say why the latest plug-in did not back up.
	LastAttempt RunRef `json:"last_attempt,omitzero"`
	// LastSuccess is the device's latest successful run.
	LastSuccess RunRef `json:"last_success,omitzero"`
}

// DeviceFacts are the facts UpsertDevice records. Empty fields leave the
// stored value as it is: a locked phone tells less than an unlocked one.
type DeviceFacts struct {
	UDID        string
	Name        string
	ProductType string
	IOSVersion  string
}

// Keys.

const runKeyLen = 16

// runKey is the key of a run in runs, device_runs and running. Flipping
// the sign bit makes the unsigned big-endian order of the nanoseconds the
// signed order of the times.
func runKey(start time.Time, id RunID) []byte {
	k := make([]byte, runKeyLen)
	binary.BigEndian.PutUint64(k, uint64(start.UnixNano())^(1<<63))
	binary.BigEndian.PutUint64(k[8:], uint64(id))
	return k
}

// timeKey is the smallest run key at time t: seeking to it finds the
// first run that started at t or later.
func timeKey(t time.Time) []byte { return runKey(t, 0) }

func keyID(k []byte) RunID { return RunID(binary.BigEndian.Uint64(k[8:])) }

func idKey(id RunID) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, uint64(id))
	return k
}

// Cursors are run keys in base64: opaque to callers, and a cursor still
// works after the run it names was pruned.

func encodeCursor(k []byte) string { return base64.RawURLEncoding.EncodeToString(k) }

func decodeCursor(s string) ([]byte, error) {
	k, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(k) != runKeyLen {
		return nil, fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	return k, nil
}

// Encoding.

func decodeRun(data []byte) (Run, error) {
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return Run{}, err
	}
	// A record an older backupd wrote holds the phone's strings as the
	// phone sent them: clean them as a phone's are now.
	r.DeviceName, r.IOSVersion = devicestring.Clean(r.DeviceName), devicestring.Clean(r.IOSVersion)
	return r, nil
}

func decodeDevice(data []byte) (Device, error) {
	var d Device
	if err := json.Unmarshal(data, &d); err != nil {
		return Device{}, err
	}
	d.Name, d.ProductType, d.IOSVersion = devicestring.Clean(d.Name), devicestring.Clean(d.ProductType), devicestring.Clean(d.IOSVersion)
	return d, nil
}

// encodeOver encodes v as JSON, keeping the members of old (the record v
// replaces) that this version of backupd does not know: a newer version
// may have added them, and rewriting a record (to finish a run, say) must
// not drop them.
func encodeOver(old []byte, v any) ([]byte, error) {
	fresh, err := json.Marshal(v)
	if err != nil || len(old) == 0 {
		return fresh, err
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(old, &members) != nil {
		return fresh, nil // nothing readable to keep
	}
	known := jsonNames(reflect.TypeOf(v))
	for name := range members {
		if known[name] {
			delete(members, name)
		}
	}
	if len(members) == 0 {
		return fresh, nil
	}
	var ours map[string]json.RawMessage
	if err := json.Unmarshal(fresh, &ours); err != nil {
		return nil, err
	}
	for name, val := range ours {
		members[name] = val
	}
	return json.Marshal(members)
}

// jsonNames returns the JSON member names of struct type t's fields.
func jsonNames(t reflect.Type) map[string]bool {
	names := make(map[string]bool, t.NumField())
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		names[name] = true
	}
	return names
}

// normalise fills what a finished record must have: every outcome but
// success says why, and an interruption is its own cause.
func normalise(r *Run) {
	if r.Cause != cause.None {
		return
	}
	switch r.Outcome {
	case OutcomeInterrupted:
		r.Cause = cause.Interrupted
	case OutcomeFailed, OutcomeSkipped:
		r.Cause = cause.Unknown
	}
}

// validateNew checks what BeginRun and RecordSkip need: the fields that
// make the record's keys.
func validateNew(r Run) error {
	var errs []error
	if r.UDID == "" {
		errs = append(errs, errors.New("no UDID"))
	}
	if len(r.UDID) > maxUDIDLen {
		errs = append(errs, fmt.Errorf("UDID of %d bytes", len(r.UDID)))
	}
	if r.Start.IsZero() {
		errs = append(errs, errors.New("no start time"))
	}
	if !r.Trigger.known() {
		errs = append(errs, fmt.Errorf("unknown trigger %q", r.Trigger))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// maxUDIDLen bounds a UDID, which names a nested bucket. Real ones are 25
// or 40 characters.
const maxUDIDLen = 256
