package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/cause"
)

func TestBeginRun(t *testing.T) {
	s := newStore(t)
	in := run("A", t0)
	in.ID, in.Outcome, in.End, in.Cause = 99, OutcomeSuccess, t0.Add(time.Hour), cause.Stalled
	got := begin(t, s, in)
	if got.ID != 1 || got.Outcome != OutcomeRunning || !got.End.IsZero() {
		t.Errorf("BeginRun = id %d, %s, end %v; want id 1, running, no end", got.ID, got.Outcome, got.End)
	}
	stored, err := s.Run(got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !runsEqual(stored, got) {
		t.Errorf("Run(1) = %+v\nBeginRun returned %+v", stored, got)
	}
	d, err := s.Device("A")
	if err != nil {
		t.Fatal(err)
	}
	want := Device{UDID: "A", Name: "Phone A", IOSVersion: "18.3", FirstSeen: t0, LastSeen: t0,
		LastAttempt: RunRef{ID: got.ID, Time: t0}}
	if !devicesEqual(d, want) {
		t.Errorf("device after the first run = %+v\nwant %+v", d, want)
	}
	if second := begin(t, s, run("A", t0.Add(time.Minute))); second.ID != 2 {
		t.Errorf("second run's id %d, want 2", second.ID)
	}
}

func TestBeginRunRejects(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Run)
	}{
		{"no UDID", func(r *Run) { r.UDID = "" }},
		{"long UDID", func(r *Run) { r.UDID = strings.Repeat("A", maxUDIDLen+1) }},
		{"no start", func(r *Run) { r.Start = time.Time{} }},
		{"no trigger", func(r *Run) { r.Trigger = "" }},
		{"unknown trigger", func(r *Run) { r.Trigger = "wifi" }},
	}
	s := newStore(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run("A", t0)
			c.edit(&r)
			if _, err := s.BeginRun(r); !errors.Is(err, ErrInvalid) {
				t.Errorf("BeginRun: %v; want ErrInvalid", err)
			}
			if _, err := s.RecordSkip(r); !errors.Is(err, ErrInvalid) {
				t.Errorf("RecordSkip: %v; want ErrInvalid", err)
			}
		})
	}
	if devs, _ := s.Devices(); len(devs) != 0 {
		t.Errorf("rejected runs made devices: %v", devs)
	}
}

func TestFinishRun(t *testing.T) {
	cases := []struct {
		outcome     Outcome
		cause       cause.Code
		wantCause   cause.Code
		wantSuccess bool
	}{
		{OutcomeSuccess, cause.None, cause.None, true},
		{OutcomeSuccess, cause.SlowLink, cause.SlowLink, true},
		{OutcomeFailed, cause.PasscodeNotEntered, cause.PasscodeNotEntered, false},
		{OutcomeFailed, cause.None, cause.Unknown, false},
		{OutcomeInterrupted, cause.None, cause.Interrupted, false},
		{OutcomeSkipped, cause.BatteryLow, cause.BatteryLow, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s", c.outcome, c.cause), func(t *testing.T) {
			s := newStore(t)
			r := begin(t, s, run("A", t0))
			r.Outcome, r.End, r.Cause = c.outcome, t0.Add(10*time.Minute), c.cause
			r.Bytes, r.Files, r.Kind, r.Encrypted = 1<<30, 12345, KindIncremental, true
			r.Verify, r.VersionPath = "ok", "/backups/.backupd/versions/A/2025-03-01T09:10:00Z"
			got, err := s.FinishRun(r)
			if err != nil {
				t.Fatal(err)
			}
			want := r
			want.Cause = c.wantCause
			if !runsEqual(got, want) {
				t.Errorf("FinishRun = %+v\nwant %+v", got, want)
			}
			stored, err := s.Run(r.ID)
			if err != nil || !runsEqual(stored, want) {
				t.Errorf("Run = %+v, %v\nwant %+v", stored, err, want)
			}
			d, _ := s.Device("A")
			if gotSuccess := d.LastSuccess.ID == r.ID; gotSuccess != c.wantSuccess {
				t.Errorf("LastSuccess = %+v; success recorded %v, want %v", d.LastSuccess, gotSuccess, c.wantSuccess)
			}
			if c.wantSuccess && !d.LastSuccess.Time.Equal(r.End) {
				t.Errorf("LastSuccess.Time = %v, want the end %v", d.LastSuccess.Time, r.End)
			}
			// Once ended, a run stays ended.
			if _, err := s.FinishRun(r); !errors.Is(err, ErrNotRunning) {
				t.Errorf("second FinishRun: %v; want ErrNotRunning", err)
			}
			if err := s.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestFinishRunRejects(t *testing.T) {
	s := newStore(t)
	r := begin(t, s, run("A", t0))
	r.Outcome, r.End = OutcomeSuccess, t0.Add(time.Minute)
	cases := []struct {
		name string
		edit func(*Run)
		want error
	}{
		{"still running", func(r *Run) { r.Outcome = OutcomeRunning }, ErrInvalid},
		{"unknown outcome", func(r *Run) { r.Outcome = "great" }, ErrInvalid},
		{"no end", func(r *Run) { r.End = time.Time{} }, ErrInvalid},
		{"other device", func(r *Run) { r.UDID = "B" }, ErrInvalid},
		{"other start", func(r *Run) { r.Start = t0.Add(time.Second) }, ErrInvalid},
		{"other trigger", func(r *Run) { r.Trigger = TriggerManual }, ErrInvalid},
		{"no such run", func(r *Run) { r.ID = 42 }, ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := r
			c.edit(&bad)
			if _, err := s.FinishRun(bad); !errors.Is(err, c.want) {
				t.Errorf("FinishRun: %v; want %v", err, c.want)
			}
		})
	}
	if got, _ := s.Run(r.ID); got.Outcome != OutcomeRunning {
		t.Errorf("a rejected finish changed the run: %+v", got)
	}
	// The identity may be left out: it is the stored one.
	got, err := s.FinishRun(Run{ID: r.ID, Outcome: OutcomeFailed, End: t0.Add(time.Minute), Cause: cause.Disconnected})
	if err != nil {
		t.Fatal(err)
	}
	if got.UDID != "A" || !got.Start.Equal(t0) || got.Trigger != TriggerPlugIn {
		t.Errorf("identity lost: %+v", got)
	}
}

// The latest success only moves forward: a success of an older run that
// finishes after a newer one does not take its place.
func TestLastSuccessOrder(t *testing.T) {
	s := newStore(t)
	older := begin(t, s, run("A", t0))
	newer := begin(t, s, run("A", t0.Add(time.Minute)))
	finish(t, s, newer, OutcomeSuccess, t0.Add(2*time.Minute))
	finish(t, s, older, OutcomeSuccess, t0.Add(3*time.Minute))
	d, _ := s.Device("A")
	if d.LastSuccess.ID != newer.ID || d.LastAttempt.ID != newer.ID {
		t.Errorf("LastSuccess %d, LastAttempt %d; want both %d", d.LastSuccess.ID, d.LastAttempt.ID, newer.ID)
	}
}

func TestRecordSkip(t *testing.T) {
	s := newStore(t)
	done := begin(t, s, run("A", t0))
	finish(t, s, done, OutcomeSuccess, t0.Add(time.Minute))

	r := run("A", t0.Add(time.Hour))
	r.Cause, r.Note = cause.BatteryLow, "skipped: battery 12%"
	got, err := s.RecordSkip(r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Outcome != OutcomeSkipped || got.Cause != cause.BatteryLow || !got.End.Equal(r.Start) || got.Note != r.Note {
		t.Errorf("RecordSkip = %+v", got)
	}
	d, _ := s.Device("A")
	if d.LastAttempt.ID != got.ID || d.LastSuccess.ID != done.ID {
		t.Errorf("device %+v; want latest run %d and latest success %d", d, got.ID, done.ID)
	}
	// A skip recorded late, with an earlier start, is not the latest.
	early, err := s.RecordSkip(run("A", t0.Add(30*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if early.Cause != cause.Unknown {
		t.Errorf("a skip without a cause got %q, want unknown", early.Cause)
	}
	if d, _ := s.Device("A"); d.LastAttempt.ID != got.ID {
		t.Errorf("LastAttempt moved back to %d", d.LastAttempt.ID)
	}
	if got, err := s.MarkInterrupted(t0); err != nil || len(got) != 0 {
		t.Errorf("a skip is running: %v, %v", got, err)
	}
}

func TestUpsertDevice(t *testing.T) {
	s := newStore(t)
	steps := []struct {
		facts DeviceFacts
		seen  time.Time
		want  Device
	}{
		{
			DeviceFacts{UDID: "A", Name: "Ann's iPhone", ProductType: "iPhone16,1", IOSVersion: "17.5.1"}, t0,
			Device{UDID: "A", Name: "Ann's iPhone", ProductType: "iPhone16,1", IOSVersion: "17.5.1", FirstSeen: t0, LastSeen: t0},
		},
		{
			// Locked: only some facts. The others stay.
			DeviceFacts{UDID: "A", IOSVersion: "18.3"}, t0.Add(time.Hour),
			Device{UDID: "A", Name: "Ann's iPhone", ProductType: "iPhone16,1", IOSVersion: "18.3", FirstSeen: t0, LastSeen: t0.Add(time.Hour)},
		},
		{
			// Seen earlier than anything known (a clock set right).
			DeviceFacts{UDID: "A", Name: "Ann"}, t0.Add(-time.Hour),
			Device{UDID: "A", Name: "Ann", ProductType: "iPhone16,1", IOSVersion: "18.3", FirstSeen: t0.Add(-time.Hour), LastSeen: t0.Add(time.Hour)},
		},
	}
	for i, st := range steps {
		if err := s.UpsertDevice(st.facts, st.seen); err != nil {
			t.Fatal(err)
		}
		got, err := s.Device("A")
		if err != nil {
			t.Fatal(err)
		}
		if !devicesEqual(got, st.want) {
			t.Errorf("step %d: %+v\nwant %+v", i, got, st.want)
		}
	}
	// Runs keep the device's pointers; upserts keep the runs'.
	r := begin(t, s, run("A", t0.Add(2*time.Hour)))
	if err := s.UpsertDevice(DeviceFacts{UDID: "A"}, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Device("A"); d.LastAttempt.ID != r.ID || d.Name != "Ann" {
		t.Errorf("after a run and an upsert: %+v", d)
	}
	for _, bad := range []struct {
		f    DeviceFacts
		seen time.Time
	}{{DeviceFacts{}, t0}, {DeviceFacts{UDID: "A"}, time.Time{}}} {
		if err := s.UpsertDevice(bad.f, bad.seen); !errors.Is(err, ErrInvalid) {
			t.Errorf("UpsertDevice(%+v, %v): %v", bad.f, bad.seen, err)
		}
	}
	if _, err := s.Device("B"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Device(B): %v", err)
	}
}

// TestMarkInterrupted: a run that was running when the process died is
// ended at the next start, and only once.
func TestMarkInterrupted(t *testing.T) {
	path := dbPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := begin(t, s, run("A", t0))
	done := begin(t, s, run("A", t0.Add(time.Minute)))
	finish(t, s, done, OutcomeSuccess, t0.Add(2*time.Minute))
	b := begin(t, s, run("B", t0.Add(3*time.Minute)))
	future := begin(t, s, run("C", t0.Add(48*time.Hour))) // a clock that was ahead
	// The process dies: no FinishRun, and Close stands in for the exit.
	s.Close()

	s = openT(t, path, Options{})
	now := t0.Add(time.Hour)
	got, err := s.MarkInterrupted(now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []RunID{a.ID, b.ID, future.ID}; !slices.Equal(ids(got), want) {
		t.Fatalf("MarkInterrupted ended %v, want %v", ids(got), want)
	}
	for _, r := range got {
		stored, err := s.Run(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantEnd := now
		if r.ID == future.ID {
			wantEnd = future.Start
		}
		if stored.Outcome != OutcomeInterrupted || stored.Cause != cause.Interrupted || !stored.End.Equal(wantEnd) || stored.Note == "" {
			t.Errorf("run %d after MarkInterrupted: %+v", r.ID, stored)
		}
		if !runsEqual(stored, r) {
			t.Errorf("returned %+v\nstored %+v", r, stored)
		}
	}
	if _, err := s.FinishRun(Run{ID: a.ID, Outcome: OutcomeSuccess, End: now}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("FinishRun after MarkInterrupted: %v; want ErrNotRunning", err)
	}
	if again, err := s.MarkInterrupted(now); err != nil || len(again) != 0 {
		t.Errorf("second MarkInterrupted: %v, %v", ids(again), err)
	}
	if page, _ := s.History("A", HistoryQuery{Outcomes: []Outcome{OutcomeInterrupted}}); !slices.Equal(ids(page.Runs), []RunID{a.ID}) {
		t.Errorf("interrupted runs of A: %v", ids(page.Runs))
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

func TestSetError(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want Run
	}{
		{"nil", nil, Run{}},
		{"errno", fmt.Errorf("write: %w", syscall.ENOSPC), Run{Cause: cause.HostDiskFull, Errno: syscall.ENOSPC.Error()}},
		{"device", cause.FromDevice(cause.DeviceErrPasscodeRequired, "passcode required"),
			Run{Cause: cause.PasscodeNotEntered, DeviceErrorCode: 208, DeviceErrorText: "passcode required"}},
		{"plain", errors.New("boom"), Run{Cause: cause.Unknown}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Run{Cause: cause.Stalled, Errno: "old", DeviceErrorCode: 1, DeviceErrorText: "old"}
			r.SetError(c.err)
			if !reflect.DeepEqual(r, c.want) {
				t.Errorf("SetError(%v) = %+v, want %+v", c.err, r, c.want)
			}
		})
	}
}

// TestForwardCompatible: a newer backupd may add fields to a record
// without a new schema. This one reads such records, and keeps the fields
// when it rewrites them.
func TestForwardCompatible(t *testing.T) {
	path := dbPath(t)
	s := openT(t, path, Options{})
	r := begin(t, s, run("A", t0))
	s.Close()
	key := runKey(r.Start, r.ID)
	addField := func(bucket string, k []byte) {
		rawUpdate(t, path, func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(bucket))
			var m map[string]any
			if err := json.Unmarshal(b.Get(k), &m); err != nil {
				return err
			}
			m["thermal_state"] = map[string]any{"level": "nominal", "celsius": 31.5}
			m["note"] = "from the future"
			data, err := json.Marshal(m)
			if err != nil {
				return err
			}
			return b.Put(k, data)
		})
	}
	addField(bucketRuns, key)
	addField(bucketDevices, []byte("A"))

	s = openT(t, path, Options{})
	got, err := s.Run(r.ID)
	if err != nil {
		t.Fatalf("a record with a field from the future: %v", err)
	}
	if got.Note != "from the future" || got.UDID != "A" {
		t.Errorf("decoded %+v", got)
	}
	if _, err := s.Device("A"); err != nil {
		t.Fatal(err)
	}
	r.Note = "" // this version clears a field it knows, keeps the one it does not
	finish(t, s, r, OutcomeSuccess, t0.Add(time.Minute))
	s.Close()

	for _, raw := range [][]byte{rawGet(t, path, []byte(bucketRuns), key), rawGet(t, path, []byte(bucketDevices), []byte("A"))} {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if string(m["thermal_state"]) != `{"celsius":31.5,"level":"nominal"}` {
			t.Errorf("the unknown field was not kept: %s", raw)
		}
	}
	var stored Run
	if err := json.Unmarshal(rawGet(t, path, []byte(bucketRuns), key), &stored); err != nil {
		t.Fatal(err)
	}
	if stored.Note != "" || stored.Outcome != OutcomeSuccess {
		t.Errorf("the known fields were not rewritten: %+v", stored)
	}
}

// TestConcurrent: the daemon runs one actor per device, all writing and
// reading at once. Run with -race.
func TestConcurrent(t *testing.T) {
	s := newStore(t)
	const devices, runsEach = 6, 40
	var wg sync.WaitGroup
	errs := make(chan error, devices*2)
	for d := range devices {
		udid := fmt.Sprintf("DEV-%d", d)
		wg.Go(func() {
			for i := range runsEach {
				start := t0.Add(time.Duration(i) * time.Minute)
				if err := s.UpsertDevice(DeviceFacts{UDID: udid, Name: udid}, start); err != nil {
					errs <- err
					return
				}
				r, err := s.BeginRun(run(udid, start))
				if err != nil {
					errs <- err
					return
				}
				r.Outcome, r.End = OutcomeSuccess, start.Add(time.Second)
				if i%3 == 0 {
					r.Outcome, r.Cause = OutcomeFailed, cause.Disconnected
				}
				if _, err := s.FinishRun(r); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for range runsEach {
				if _, err := s.LatestPerDevice(); err != nil {
					errs <- err
					return
				}
				if _, err := s.History(udid, HistoryQuery{Limit: 10}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	latest, err := s.LatestPerDevice()
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != devices {
		t.Fatalf("%d latest runs, want %d", len(latest), devices)
	}
	wantOutcome := OutcomeSuccess
	if (runsEach-1)%3 == 0 {
		wantOutcome = OutcomeFailed
	}
	for _, r := range latest {
		if want := t0.Add((runsEach - 1) * time.Minute); !r.Start.Equal(want) || r.Outcome != wantOutcome {
			t.Errorf("latest of %s: start %v %s, want %v %s", r.UDID, r.Start, r.Outcome, want, wantOutcome)
		}
	}
	counts, err := s.FailuresByCause(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if want := devices * ((runsEach + 2) / 3); counts[cause.Disconnected] != want {
		t.Errorf("failures %v, want %d disconnected", counts, want)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

// runsEqual compares runs as stored: times by instant.
func runsEqual(a, b Run) bool {
	if !a.Start.Equal(b.Start) || !a.End.Equal(b.End) {
		return false
	}
	a.Start, a.End, b.Start, b.End = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func devicesEqual(a, b Device) bool {
	for _, p := range []struct{ x, y *time.Time }{
		{&a.FirstSeen, &b.FirstSeen}, {&a.LastSeen, &b.LastSeen},
		{&a.LastAttempt.Time, &b.LastAttempt.Time}, {&a.LastSuccess.Time, &b.LastSuccess.Time},
	} {
		if !p.x.Equal(*p.y) {
			return false
		}
		*p.x, *p.y = time.Time{}, time.Time{}
	}
	return a == b
}

// TestRestoreRun: a restore is a run of its own kind, with the backup it
// put back; it becomes the device's LastAttempt but never its
// LastSuccess, which says when the phone was last backed up.
func TestRestoreRun(t *testing.T) {
	s := newStore(t)
	backup := finish(t, s, begin(t, s, run("a", t0)), OutcomeSuccess, t0.Add(time.Minute))
	rr := run("a", t0.Add(time.Hour))
	rr.Trigger, rr.Kind, rr.Source, rr.Version = TriggerManual, KindRestore, "b", "2025-03-01T09-01-00.000Z"
	restored := finish(t, s, begin(t, s, rr), OutcomeSuccess, t0.Add(2*time.Hour))
	got, err := s.Run(restored.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != KindRestore || got.Source != "b" || got.Version != rr.Version || got.Outcome != OutcomeSuccess {
		t.Errorf("stored restore = %+v", got)
	}
	d, err := s.Device("a")
	if err != nil {
		t.Fatal(err)
	}
	if d.LastAttempt.ID != restored.ID {
		t.Errorf("LastAttempt = %d, want the restore %d", d.LastAttempt.ID, restored.ID)
	}
	if d.LastSuccess.ID != backup.ID {
		t.Errorf("LastSuccess = %d, want the backup %d, not the restore", d.LastSuccess.ID, backup.ID)
	}
}
