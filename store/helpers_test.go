package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// t0 is the time tests start their histories at.
var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

func dbPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "history.db")
}

// openT opens path and closes it at the end of the test.
func openT(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s, %+v): %v", path, opts, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newStore(t testing.TB) *Store {
	t.Helper()
	return openT(t, dbPath(t), Options{})
}

// run is a run of udid started at start by a plug-in.
func run(udid string, start time.Time) Run {
	return Run{UDID: udid, DeviceName: "Phone " + udid, IOSVersion: "18.3", Trigger: TriggerPlugIn, Start: start, Link: "USB", LinkSpeed: 480_000_000}
}

func begin(t testing.TB, s *Store, r Run) Run {
	t.Helper()
	got, err := s.BeginRun(r)
	if err != nil {
		t.Fatalf("BeginRun(%+v): %v", r, err)
	}
	return got
}

func finish(t testing.TB, s *Store, r Run, o Outcome, end time.Time) Run {
	t.Helper()
	r.Outcome, r.End = o, end
	got, err := s.FinishRun(r)
	if err != nil {
		t.Fatalf("FinishRun(%d, %s): %v", r.ID, o, err)
	}
	return got
}

// ids returns the ids of runs, in order.
func ids(runs []Run) []RunID {
	out := make([]RunID, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.ID)
	}
	return out
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertUnchanged fails unless path still holds want.
func assertUnchanged(t testing.TB, path string, want []byte) {
	t.Helper()
	if got := readFile(t, path); !bytes.Equal(got, want) {
		t.Fatalf("%s changed: %d bytes before, %d after", path, len(want), len(got))
	}
}

// assertOnlyFile fails if anything but path is in its directory: Open
// must not leave a new database, a backup or a lock file beside a file it
// refused.
func assertOnlyFile(t testing.TB, path string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(path) {
			t.Errorf("Open left %s beside %s", e.Name(), filepath.Base(path))
		}
	}
}

// rawUpdate changes the database at path with bbolt directly, to build
// layouts and damage that the store itself never makes.
func rawUpdate(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// rawGet reads one value with bbolt directly.
func rawGet(t testing.TB, path string, bucket, key []byte) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return errors.New("no bucket " + string(bucket))
		}
		v = bytes.Clone(b.Get(key))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustErrorIs(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v; want one that is %v", err, target)
	}
}
