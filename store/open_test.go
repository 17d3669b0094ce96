package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenCreates(t *testing.T) {
	path := dbPath(t)
	s := openT(t, path, Options{})
	if got := s.Path(); got != path {
		t.Errorf("Path() = %s, want %s", got, path)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	if v := string(rawGetOpen(t, s, []byte(bucketMeta), []byte(keySchema))); v != fmt.Sprint(SchemaVersion) {
		t.Errorf("schema %q, want %d", v, SchemaVersion)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check on a new database: %v", err)
	}
}

// rawGetOpen reads one value through an open store.
func rawGetOpen(t testing.TB, s *Store, bucket, key []byte) []byte {
	t.Helper()
	var v []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucket).Get(key))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpenReadOnlyWithoutFile(t *testing.T) {
	path := dbPath(t)
	_, err := Open(path, Options{ReadOnly: true})
	mustErrorIs(t, err, fs.ErrNotExist)
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a read-only open created %s: %v", path, err)
	}

	// An empty file is no history yet, for a reader; a writer starts one.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{ReadOnly: true})
	mustErrorIs(t, err, fs.ErrNotExist)
	assertUnchanged(t, path, nil)
	s := openT(t, path, Options{})
	if _, err := s.BeginRun(run("A", t0)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDirectoryMissing(t *testing.T) {
	path := dbPath(t) + "/no/such/dir/history.db"
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open in a missing directory: %v; want an error naming %s", err, path)
	}
	if errors.Is(err, ErrCorrupt) {
		t.Errorf("a missing directory is not a corrupt database: %v", err)
	}
}

// TestOpenGarbage: a file that is not a history is reported, with its
// path, and is left byte for byte as it was, by a reader and a writer.
func TestOpenGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"text", []byte("this is not a database\n")},
		{"one byte", []byte{0}},
		{"random 64 KiB", random(64 << 10)},
		{"zeros 32 KiB", make([]byte, 32<<10)},
		{"sqlite header", append([]byte("SQLite format 3\x00"), random(8192)...)},
	}
	for _, c := range cases {
		for _, readOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/readonly=%v", c.name, readOnly), func(t *testing.T) {
				path := dbPath(t)
				if err := os.WriteFile(path, c.data, 0o600); err != nil {
					t.Fatal(err)
				}
				s, err := Open(path, Options{ReadOnly: readOnly})
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded on garbage")
				}
				mustErrorIs(t, err, ErrCorrupt)
				for _, want := range []string{path, "corrupt", "left as it is", "move it aside"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				assertUnchanged(t, path, c.data)
				assertOnlyFile(t, path)
			})
		}
	}
}

// filled makes a database with n runs over three devices and returns its
// path, closed.
func filled(t testing.TB, n int) string {
	t.Helper()
	path := dbPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.update(func(tx *bolt.Tx) error {
		for i := range n {
			r := run(fmt.Sprintf("UDID-%d", i%3), t0.Add(time.Duration(i)*time.Minute))
			r.Outcome = OutcomeFailed
			r.End = r.Start.Add(time.Second)
			r.Note = strings.Repeat("x", 200) // more pages
			if err := s.create(tx, &r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// highWater returns where the pages of the database at path end, and its
// page size.
func highWater(t testing.TB, path string) (int64, int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var size int64
	if err := db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return size, db.Info().PageSize
}

// TestOpenTruncated: a database cut short (a disk that filled, a copy that
// stopped) is reported as corrupt and left as it is, however much of it is
// left; reading it would otherwise fault on the missing pages.
func TestOpenTruncated(t *testing.T) {
	path := filled(t, 400)
	full := readFile(t, path)
	hw, pageSize := highWater(t, path)
	if hw < int64(8*pageSize) {
		t.Fatalf("the test database is too small to cut: %d bytes of pages", hw)
	}
	cases := []struct {
		name string
		size int64
	}{
		{"last page missing", hw - int64(pageSize)},
		{"half", hw / 2},
		{"meta pages only", int64(2 * pageSize)},
		{"part of the second meta page", int64(pageSize) + 100},
		{"part of the first meta page", 100},
	}
	for _, c := range cases {
		for _, readOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/readonly=%v", c.name, readOnly), func(t *testing.T) {
				p := dbPath(t)
				cut := full[:c.size]
				if err := os.WriteFile(p, cut, 0o600); err != nil {
					t.Fatal(err)
				}
				s, err := Open(p, Options{ReadOnly: readOnly})
				if err == nil {
					s.Close()
					t.Fatalf("Open succeeded on a file cut to %d of %d bytes", c.size, hw)
				}
				mustErrorIs(t, err, ErrCorrupt)
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not name the file", err)
				}
				assertUnchanged(t, p, cut)
				assertOnlyFile(t, p)
			})
		}
	}

	// Cutting only the unused tail past the last page loses nothing.
	t.Run("unused tail", func(t *testing.T) {
		if int64(len(full)) == hw {
			t.Skip("the file has no tail past its pages")
		}
		p := dbPath(t)
		if err := os.WriteFile(p, full[:hw], 0o600); err != nil {
			t.Fatal(err)
		}
		s := openT(t, p, Options{ReadOnly: true})
		if err := s.Check(); err != nil {
			t.Errorf("Check: %v", err)
		}
	})
}

// TestOpenDamagedPage: damage in the middle of the file, one page at a
// time. Open reads only the meta pages and the root, so it sees damage
// there; damage elsewhere is found by Check, and queries meet it as
// errors, never as a crash of the process.
func TestOpenDamagedPage(t *testing.T) {
	path := filled(t, 400)
	hw, pageSize := highWater(t, path)
	clean := readFile(t, path)
	var openFailed, queriesFailed, checkFailed, pages int
	for pg := int64(2); pg < hw/int64(pageSize); pg++ {
		pages++
		data := bytes.Clone(clean)
		// A pattern, as a bad sector or a stray write would leave.
		for off := pg * int64(pageSize); off < (pg+1)*int64(pageSize); off++ {
			data[off] = 0xA5
		}
		p := dbPath(t)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(p, Options{ReadOnly: true})
		if err != nil {
			mustErrorIs(t, err, ErrCorrupt)
			openFailed++
			continue
		}
		failed := false
		for _, q := range []func() error{
			func() error { _, err := s.History("", HistoryQuery{Limit: MaxHistoryLimit}); return err },
			func() error { _, err := s.History("UDID-1", HistoryQuery{Limit: MaxHistoryLimit}); return err },
			func() error { _, err := s.RunsBetween(time.Time{}, time.Time{}); return err },
			func() error { _, err := s.FailuresByCause(time.Time{}); return err },
			func() error { _, err := s.LatestPerDevice(); return err },
			func() error { _, err := s.Devices(); return err },
		} {
			if err := q(); err != nil {
				mustErrorIs(t, err, ErrCorrupt)
				failed = true
			}
		}
		if failed {
			queriesFailed++
		}
		if err := s.Check(); err != nil {
			mustErrorIs(t, err, ErrCorrupt)
			checkFailed++
		} else if failed {
			t.Errorf("page %d: queries failed but Check passed", pg)
		}
		s.Close()
		assertUnchanged(t, p, data)
	}
	t.Logf("%d pages damaged one at a time: Open refused %d, queries failed on %d, Check failed on %d", pages, openFailed, queriesFailed, checkFailed)
	if queriesFailed == 0 || openFailed == 0 {
		t.Errorf("the damage never reached Open (%d) or the queries (%d): the test tests nothing", openFailed, queriesFailed)
	}
}

func TestOpenForeignBolt(t *testing.T) {
	path := dbPath(t)
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("widgets"))
		return err
	})
	before := readFile(t, path)
	for _, readOnly := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: readOnly})
		mustErrorIs(t, err, ErrCorrupt)
		if !strings.Contains(err.Error(), "not a backupd history") {
			t.Errorf("error %q does not say what the file is", err)
		}
		assertUnchanged(t, path, before)
	}
}

// TestOpenInUse: bbolt's lock is flock on Unix, which belongs to an open
// file description, so a second Open in the same process conflicts with
// the first just as another process's would.
func TestOpenInUse(t *testing.T) {
	cases := []struct {
		name                 string
		first, second        bool // ReadOnly
		wantInUse            bool
		secondTimeoutDefault bool
	}{
		{name: "writer then writer", wantInUse: true},
		{name: "writer then reader", second: true, wantInUse: true},
		{name: "reader then writer", first: true, wantInUse: true},
		{name: "reader then reader", first: true, second: true},
		{name: "default timeout", wantInUse: true, secondTimeoutDefault: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := dbPath(t)
			// The file exists for a reader to open.
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			openT(t, path, Options{ReadOnly: c.first})

			timeout := 150 * time.Millisecond
			if c.secondTimeoutDefault {
				timeout = 0
			}
			start := time.Now()
			s2, err := Open(path, Options{ReadOnly: c.second, Timeout: timeout})
			took := time.Since(start)
			if !c.wantInUse {
				if err != nil {
					t.Fatalf("second open: %v", err)
				}
				s2.Close()
				return
			}
			if err == nil {
				s2.Close()
				t.Fatal("second open succeeded while the first holds the file")
			}
			mustErrorIs(t, err, ErrInUse)
			if errors.Is(err, ErrCorrupt) {
				t.Errorf("a busy file is not corrupt: %v", err)
			}
			for _, want := range []string{path, "in use by another process (is backupd already running?)"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			want := timeout
			if want == 0 {
				want = DefaultTimeout
			}
			if took < want/2 || took > want+2*time.Second {
				t.Errorf("gave up after %v; the timeout is %v", took, want)
			}
		})
	}
}

// The child side of TestOpenInUseByAnotherProcess: holds the database
// until its stdin closes.
func TestHelperHoldDatabase(t *testing.T) {
	path := os.Getenv("BACKUPD_STORE_HOLD")
	if path == "" {
		t.Skip("only run as a child of TestOpenInUseByAnotherProcess")
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("holding")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	s.Close()
	os.Exit(0)
}

func TestOpenInUseByAnotherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	path := dbPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldDatabase$")
	cmd.Env = append(os.Environ(), "BACKUPD_STORE_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	for _, readOnly := range []bool{false, true} {
		_, err = Open(path, Options{ReadOnly: readOnly, Timeout: 100 * time.Millisecond})
		mustErrorIs(t, err, ErrInUse)
	}
	// Once the child lets go, the file opens.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	openT(t, path, Options{})
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	path := dbPath(t)
	s := openT(t, path, Options{})
	r := begin(t, s, run("A", t0))
	s.Close()
	before := readFile(t, path)

	ro := openT(t, path, Options{ReadOnly: true})
	writes := map[string]func() error{
		"BeginRun":   func() error { _, err := ro.BeginRun(run("A", t0)); return err },
		"FinishRun":  func() error { _, err := ro.FinishRun(Run{ID: r.ID, Outcome: OutcomeSuccess, End: t0}); return err },
		"RecordSkip": func() error { _, err := ro.RecordSkip(run("A", t0)); return err },
		"Upsert":     func() error { return ro.UpsertDevice(DeviceFacts{UDID: "A"}, t0) },
		"Interrupt":  func() error { _, err := ro.MarkInterrupted(t0); return err },
		"Prune":      func() error { _, err := ro.Prune(t0, Retention{MaxRuns: 1}); return err },
	}
	for name, w := range writes {
		if err := w(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only store: %v; want ErrReadOnly", name, err)
		}
	}
	got, err := ro.Run(r.ID)
	if err != nil || got.Outcome != OutcomeRunning {
		t.Errorf("Run(%d) = %+v, %v", r.ID, got, err)
	}
	if err := ro.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	ro.Close()
	assertUnchanged(t, path, before)
}

// A bbolt file that a writer created but has nothing in yet reads as an
// empty history.
func TestReadOnlyEmptyBolt(t *testing.T) {
	path := dbPath(t)
	rawUpdate(t, path, func(*bolt.Tx) error { return nil })
	s := openT(t, path, Options{ReadOnly: true})
	if devs, err := s.Devices(); err != nil || len(devs) != 0 {
		t.Errorf("Devices() = %v, %v", devs, err)
	}
	if page, err := s.History("", HistoryQuery{}); err != nil || len(page.Runs) != 0 {
		t.Errorf("History() = %v, %v", page, err)
	}
	if runs, err := s.LatestPerDevice(); err != nil || len(runs) != 0 {
		t.Errorf("LatestPerDevice() = %v, %v", runs, err)
	}
	if _, err := s.Run(1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Run(1): %v", err)
	}
	if _, err := s.Device("A"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Device(A): %v", err)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestCheckFindsBrokenIndexes(t *testing.T) {
	cases := []struct {
		name   string
		damage func(tx *bolt.Tx, r Run) error
		want   string
	}{
		{"run missing from run_ids", func(tx *bolt.Tx, r Run) error {
			return tx.Bucket([]byte(bucketRunIDs)).Delete(idKey(r.ID))
		}, "not in run_ids"},
		{"wrong outcome in device_runs", func(tx *bolt.Tx, r Run) error {
			return tx.Bucket([]byte(bucketDeviceRuns)).Bucket([]byte(r.UDID)).Put(runKey(r.Start, r.ID), []byte("success"))
		}, "not in device_runs"},
		{"running run not in running", func(tx *bolt.Tx, r Run) error {
			return tx.Bucket([]byte(bucketRunning)).Delete(runKey(r.Start, r.ID))
		}, "in running is false"},
		{"record that does not decode", func(tx *bolt.Tx, r Run) error {
			return tx.Bucket([]byte(bucketRuns)).Put(runKey(r.Start, r.ID), []byte("{"))
		}, "unexpected end of JSON"},
		{"run gone, pointers left", func(tx *bolt.Tx, r Run) error {
			return tx.Bucket([]byte(bucketRuns)).Delete(runKey(r.Start, r.ID))
		}, "run_ids has 1 entries for 0 runs"},
		{"missing bucket", func(tx *bolt.Tx, r Run) error {
			return tx.DeleteBucket([]byte(bucketRunning))
		}, "bucket running is missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := dbPath(t)
			s := openT(t, path, Options{})
			r := begin(t, s, run("A", t0))
			if err := s.Check(); err != nil {
				t.Fatalf("Check before the damage: %v", err)
			}
			s.Close()
			rawUpdate(t, path, func(tx *bolt.Tx) error { return c.damage(tx, r) })
			s, err := Open(path, Options{ReadOnly: true})
			if err != nil {
				// A missing bucket is found by Open too, for a writer.
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			err = s.Check()
			mustErrorIs(t, err, ErrCorrupt)
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Check: %v; want it to say %q", err, c.want)
			}
		})
	}
}

func TestOpenWriterFindsMissingBucket(t *testing.T) {
	path := dbPath(t)
	openT(t, path, Options{}).Close()
	rawUpdate(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(bucketRunIDs)) })
	_, err := Open(path, Options{})
	mustErrorIs(t, err, ErrCorrupt)
	if !strings.Contains(err.Error(), "run_ids") {
		t.Errorf("error %q does not name the bucket", err)
	}
}
