package store

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/cause"
)

// writeV1 writes a history in schema 1, the layout before the indexes:
// meta, devices and runs only. Its runs bucket's sequence is left at 0,
// as a careless old version might have, so the upgrade must find the
// highest id itself. It returns the runs, oldest first.
func writeV1(t *testing.T, path string) []Run {
	t.Helper()
	runs := []Run{
		{ID: 1, UDID: "A", Trigger: TriggerPlugIn, Start: t0, End: t0.Add(time.Minute), Outcome: OutcomeSuccess},
		{ID: 2, UDID: "B", Trigger: TriggerSchedule, Start: t0.Add(time.Hour), End: t0.Add(time.Hour), Outcome: OutcomeSkipped, Cause: cause.BatteryLow},
		{ID: 4, UDID: "A", Trigger: TriggerManual, Start: t0.Add(2 * time.Hour), End: t0.Add(3 * time.Hour), Outcome: OutcomeFailed, Cause: cause.Disconnected},
		{ID: 3, UDID: "A", Trigger: TriggerPlugIn, Start: t0.Add(4 * time.Hour), Outcome: OutcomeRunning},
	}
	devices := []Device{
		{UDID: "A", Name: "Ann", FirstSeen: t0, LastSeen: t0.Add(4 * time.Hour),
			LastAttempt: RunRef{ID: 3, Time: t0.Add(4 * time.Hour)}, LastSuccess: RunRef{ID: 1, Time: t0.Add(time.Minute)}},
		{UDID: "B", Name: "Bob", FirstSeen: t0.Add(time.Hour), LastSeen: t0.Add(time.Hour),
			LastAttempt: RunRef{ID: 2, Time: t0.Add(time.Hour)}},
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("schema"), []byte("1")); err != nil {
			return err
		}
		db, err := tx.CreateBucket([]byte("devices"))
		if err != nil {
			return err
		}
		for _, d := range devices {
			data, _ := json.Marshal(d)
			if err := db.Put([]byte(d.UDID), data); err != nil {
				return err
			}
		}
		rb, err := tx.CreateBucket([]byte("runs"))
		if err != nil {
			return err
		}
		for _, r := range runs {
			data, _ := json.Marshal(r)
			if err := rb.Put(runKey(r.Start, r.ID), data); err != nil {
				return err
			}
		}
		return nil
	})
	return runs
}

func schemaOf(t *testing.T, path string) string {
	t.Helper()
	return string(rawGet(t, path, []byte(bucketMeta), []byte(keySchema)))
}

func TestMigrateV1ToV2(t *testing.T) {
	path := dbPath(t)
	runs := writeV1(t, path)
	original := readFile(t, path)

	// A reader cannot upgrade, and says who can.
	_, err := Open(path, Options{ReadOnly: true})
	mustErrorIs(t, err, ErrOlderSchema)
	if !strings.Contains(err.Error(), "start the backupd daemon") {
		t.Errorf("error %q does not say what to do", err)
	}
	assertUnchanged(t, path, original)

	s := openT(t, path, Options{})
	// The copy is the old database as it was (bbolt writes its own meta
	// pages, so it is not the same bytes).
	backup := path + ".schema-1.bak"
	if got := schemaOf(t, backup); got != "1" {
		t.Errorf("the copy has schema %q, want 1", got)
	}
	want, _ := json.Marshal(runs[2])
	if got := rawGet(t, backup, []byte(bucketRuns), runKey(runs[2].Start, runs[2].ID)); string(got) != string(want) {
		t.Errorf("the copy's run 4 is %s, want %s", got, want)
	}

	// The indexes answer as if the runs had been written by this version.
	page, err := s.History("A", HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(page.Runs), []RunID{3, 4, 1}; !slices.Equal(got, want) {
		t.Errorf("history of A after the upgrade: %v, want %v", got, want)
	}
	page, err = s.History("A", HistoryQuery{Outcomes: []Outcome{OutcomeFailed}})
	if err != nil || !slices.Equal(ids(page.Runs), []RunID{4}) {
		t.Errorf("failures of A: %v, %v", ids(page.Runs), err)
	}
	for _, r := range runs {
		got, err := s.Run(r.ID)
		if err != nil || !runsEqual(got, r) {
			t.Errorf("Run(%d) = %+v, %v\nwant %+v", r.ID, got, err, r)
		}
	}
	latest, err := s.LatestPerDevice()
	if err != nil || !slices.Equal(ids(latest), []RunID{3, 2}) {
		t.Errorf("LatestPerDevice: %v, %v", ids(latest), err)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check after the upgrade: %v", err)
	}
	ended, err := s.MarkInterrupted(t0.Add(5 * time.Hour))
	if err != nil || !slices.Equal(ids(ended), []RunID{3}) {
		t.Errorf("MarkInterrupted after the upgrade: %v, %v", ids(ended), err)
	}
	// Ids go on from the highest, not from the old sequence.
	if r := begin(t, s, run("A", t0.Add(6*time.Hour))); r.ID != 5 {
		t.Errorf("first id after the upgrade: %d, want 5", r.ID)
	}
	s.Close()
	if got := schemaOf(t, path); got != "2" {
		t.Errorf("schema after the upgrade: %q, want 2", got)
	}

	// The next open has nothing to upgrade, and copies nothing.
	if err := os.Remove(backup); err != nil {
		t.Fatal(err)
	}
	openT(t, path, Options{}).Close()
	openT(t, path, Options{ReadOnly: true}).Close()
	if _, err := os.Stat(backup); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an open without an upgrade made %s: %v", backup, err)
	}
}

// TestMigrationSteps runs a chain of two upgrades (1 → 2 → 3, the last
// one invented here) in the one transaction.
func TestMigrationSteps(t *testing.T) {
	path := dbPath(t)
	writeV1(t, path)
	v3 := currentSchema()
	v3.version = 3
	v3.migrations = append(v3.migrations, migration{from: 2, what: "add events", run: func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("events"))
		return err
	}})
	s, err := openSchema(path, Options{}, v3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(4); err != nil {
		t.Errorf("Run(4) at schema 3: %v", err)
	}
	s.Close()
	if got := schemaOf(t, path); got != "3" {
		t.Errorf("schema %q, want 3", got)
	}
	if got := rawGet(t, path, []byte("events"), []byte("x")); got != nil {
		t.Errorf("events: %q", got)
	}

	// This version knows only 2: the file is too new for it, and it says
	// so without touching it, for a writer and a reader.
	before := readFile(t, path)
	for _, readOnly := range []bool{false, true} {
		_, err = Open(path, Options{ReadOnly: readOnly})
		mustErrorIs(t, err, ErrNewerSchema)
		for _, want := range []string{path, "schema version 3", "newer backupd"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		assertUnchanged(t, path, before)
	}
}

// TestMigrationFails: an upgrade that fails leaves the database at its
// old version with its data, and a copy beside it.
func TestMigrationFails(t *testing.T) {
	path := dbPath(t)
	s := openT(t, path, Options{})
	r := begin(t, s, run("A", t0))
	s.Close()

	broken := currentSchema()
	broken.version = 3
	broken.migrations = append(broken.migrations, migration{from: 2, what: "a step that fails", run: func(tx *bolt.Tx) error {
		// Half done when it fails: none of it may stay.
		if err := tx.Bucket([]byte(bucketMeta)).Put([]byte("half"), []byte("done")); err != nil {
			return err
		}
		return errors.New("disk on fire")
	}})
	_, err := openSchema(path, Options{}, broken)
	if err == nil {
		t.Fatal("a failing upgrade succeeded")
	}
	for _, want := range []string{"disk on fire", "left at schema 2", path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got := schemaOf(t, path); got != "2" {
		t.Errorf("schema after a failed upgrade: %q", got)
	}
	if got := rawGet(t, path, []byte(bucketMeta), []byte("half")); got != nil {
		t.Errorf("the failed step's write stayed: %q", got)
	}
	if _, err := os.Stat(path + ".schema-2.bak"); err != nil {
		t.Errorf("no copy before the upgrade: %v", err)
	}
	s = openT(t, path, Options{})
	if got, err := s.Run(r.ID); err != nil || got.UDID != "A" {
		t.Errorf("Run after a failed upgrade: %+v, %v", got, err)
	}
	s.Close()

	// A version with no way from 2 says so.
	noPath := currentSchema()
	noPath.version = 4
	if _, err := openSchema(path, Options{}, noPath); err == nil || !strings.Contains(err.Error(), "no upgrade from it") {
		t.Errorf("no upgrade path: %v", err)
	}
}

func TestBadSchemaVersion(t *testing.T) {
	for _, v := range []string{"", "two", "0", "-1"} {
		path := dbPath(t)
		openT(t, path, Options{}).Close()
		rawUpdate(t, path, func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), []byte(v))
		})
		before := readFile(t, path)
		_, err := Open(path, Options{})
		mustErrorIs(t, err, ErrCorrupt)
		assertUnchanged(t, path, before)
	}
}
