package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/cause"
)

// readBuckets returns tx's buckets for a query; ok is false for a
// database with nothing in it yet (opened read-only before the daemon
// first finished creating it), which reads as an empty history.
func (s *Store) readBuckets(tx *bolt.Tx) (b buckets, ok bool, err error) {
	if tx.Bucket([]byte(bucketMeta)) == nil {
		return buckets{}, false, nil
	}
	b, err = dataBuckets(tx)
	if err != nil {
		return buckets{}, false, corruptError(s.path, err)
	}
	return b, true, nil
}

// Run returns the run with id, or ErrNotFound.
func (s *Store) Run(id RunID) (Run, error) {
	var r Run
	err := s.view(func(tx *bolt.Tx) error {
		b, ok, err := s.readBuckets(tx)
		if err != nil {
			return err
		}
		var key []byte
		if ok {
			key = b.keyOf(id)
		}
		if key == nil {
			return fmt.Errorf("run %d: %w", id, ErrNotFound)
		}
		r, _, err = b.getRun(key) // its errors name the run
		return err
	})
	if err != nil {
		return Run{}, err
	}
	return r, nil
}

// Devices returns every device in the history, by UDID.
func (s *Store) Devices() ([]Device, error) {
	var devs []Device
	err := s.view(func(tx *bolt.Tx) error {
		b, ok, err := s.readBuckets(tx)
		if !ok {
			return err
		}
		return b.devices.ForEach(func(k, v []byte) error {
			d, err := decodeDevice(v)
			if err != nil {
				return fmt.Errorf("device %s: %w: %w", k, ErrCorrupt, err)
			}
			devs = append(devs, d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	return devs, nil
}

// Device returns the device udid, or ErrNotFound.
func (s *Store) Device(udid string) (Device, error) {
	var d Device
	err := s.view(func(tx *bolt.Tx) error {
		b, ok, err := s.readBuckets(tx)
		if !ok {
			if err == nil {
				err = ErrNotFound
			}
			return err
		}
		var found bool
		d, _, found, err = b.getDevice(udid)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("device %s: %w", udid, err)
	}
	return d, nil
}

// LatestPerDevice returns each device's latest run (its LastAttempt), by
// UDID; devices without runs are left out. It reads one record per device
// through the devices' pointers, whatever the size of the history.
func (s *Store) LatestPerDevice() ([]Run, error) {
	var runs []Run
	err := s.view(func(tx *bolt.Tx) error {
		b, ok, err := s.readBuckets(tx)
		if !ok {
			return err
		}
		return b.devices.ForEach(func(k, v []byte) error {
			var d struct {
				LastAttempt RunRef `json:"last_attempt"`
			}
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("device %s: %w: %w", k, ErrCorrupt, err)
			}
			if d.LastAttempt.ID == 0 {
				return nil
			}
			key := b.keyOf(d.LastAttempt.ID)
			if key == nil {
				return fmt.Errorf("device %s: %w: its latest run %d is missing", k, ErrCorrupt, d.LastAttempt.ID)
			}
			r, _, err := b.getRun(key)
			if err != nil {
				return err
			}
			runs = append(runs, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("latest runs: %w", err)
	}
	return runs, nil
}

// History page sizes.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 1000
)

// HistoryQuery selects a page of history.
type HistoryQuery struct {
	// Cursor is the Next of the page before; empty for the first page.
	Cursor string
	// Limit is the most runs in the page: DefaultHistoryLimit when zero or
	// less, at most MaxHistoryLimit.
	Limit int
	// Outcomes keeps only runs with one of these outcomes; empty keeps all.
	Outcomes []Outcome
}

// HistoryPage is one page of history, newest first.
type HistoryPage struct {
	Runs []Run
	// Next is the cursor of the next (older) page, empty when there is
	// none.
	Next string
}

// History returns the runs of device udid (of every device when udid is
// empty), newest first, a page at a time. A device's history is read from
// its index, so a page costs the same however long the history is; the
// outcome filter is applied in the index too.
func (s *Store) History(udid string, q HistoryQuery) (HistoryPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	limit = min(limit, MaxHistoryLimit)
	var before []byte
	if q.Cursor != "" {
		var err error
		if before, err = decodeCursor(q.Cursor); err != nil {
			return HistoryPage{}, err
		}
	}
	var page HistoryPage
	err := s.view(func(tx *bolt.Tx) error {
		b, ok, err := s.readBuckets(tx)
		if !ok {
			return err
		}
		var c *bolt.Cursor
		// outcomeOf reads the outcome from a cursor's value: the index
		// holds it as the value; the runs bucket holds the record, whose
		// outcome needs decoding.
		var outcomeOf func(v []byte) ([]byte, error)
		if udid == "" {
			c = b.runs.Cursor()
			outcomeOf = func(v []byte) ([]byte, error) {
				var r struct {
					Outcome Outcome `json:"outcome"`
				}
				if err := json.Unmarshal(v, &r); err != nil {
					return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
				}
				return []byte(r.Outcome), nil
			}
		} else {
			dev := b.deviceRuns.Bucket([]byte(udid))
			if dev == nil {
				return nil
			}
			c = dev.Cursor()
			outcomeOf = func(v []byte) ([]byte, error) { return v, nil }
		}
		var k, v []byte
		if before == nil {
			k, v = c.Last()
		} else {
			// Seek lands on before or the first key after it, or past the
			// end; the page starts at the key before that.
			if k, _ = c.Seek(before); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		var keys [][]byte
		for ; k != nil; k, v = c.Prev() {
			if len(q.Outcomes) > 0 {
				o, err := outcomeOf(v)
				if err != nil {
					return fmt.Errorf("run %d: %w", keyID(k), err)
				}
				if !slices.Contains(q.Outcomes, Outcome(o)) {
					continue
				}
			}
			if len(keys) == limit {
				page.Next = encodeCursor(keys[len(keys)-1])
				break
			}
			keys = append(keys, bytes.Clone(k))
		}
		page.Runs = make([]Run, 0, len(keys))
		for _, key := range keys {
			r, _, err := b.getRun(key)
			if err != nil {
				return err
			}
			page.Runs = append(page.Runs, r)
		}
		return nil
	})
	if err != nil {
		return HistoryPage{}, fmt.Errorf("history of %q: %w", udid, err)
	}
	return page, nil
}

// RunsBetween returns the runs that started at from or later and before
// to (no bound when to is zero), oldest first, every device together.
func (s *Store) RunsBetween(from, to time.Time) ([]Run, error) {
	var runs []Run
	err := s.view(func(tx *bolt.Tx) error {
		b, ok, err := s.readBuckets(tx)
		if !ok {
			return err
		}
		return scanFrom(b.runs, from, to, func(k, v []byte) error {
			r, err := decodeRun(v)
			if err != nil {
				return fmt.Errorf("run %d: %w: %w", keyID(k), ErrCorrupt, err)
			}
			runs = append(runs, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("runs between %v and %v: %w", from, to, err)
	}
	return runs, nil
}

// scanFrom calls fn for the runs in [from, to), to unbounded when zero.
func scanFrom(runs *bolt.Bucket, from, to time.Time, fn func(k, v []byte) error) error {
	var end []byte
	if !to.IsZero() {
		end = timeKey(to)
	}
	c := runs.Cursor()
	for k, v := c.Seek(timeKey(from)); k != nil; k, v = c.Next() {
		if end != nil && bytes.Compare(k, end) >= 0 {
			break
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// FailuresByCause counts, by cause, the runs since since (started then or
// later) that failed or were interrupted: backups that were tried and did
// not complete. Skipped runs are not counted; they were never tried.
func (s *Store) FailuresByCause(since time.Time) (map[cause.Code]int, error) {
	counts := make(map[cause.Code]int)
	err := s.view(func(tx *bolt.Tx) error {
		b, ok, err := s.readBuckets(tx)
		if !ok {
			return err
		}
		return scanFrom(b.runs, since, time.Time{}, func(k, v []byte) error {
			// Two fields decode faster than the whole record.
			var r struct {
				Outcome Outcome    `json:"outcome"`
				Cause   cause.Code `json:"cause"`
			}
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("run %d: %w: %w", keyID(k), ErrCorrupt, err)
			}
			if r.Outcome == OutcomeFailed || r.Outcome == OutcomeInterrupted {
				counts[r.Cause]++
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("failures since %v: %w", since, err)
	}
	return counts, nil
}

// checkRecords checks backupd's invariants over the whole database: every
// record decodes and matches its key, every run is in the indexes with
// its outcome, every index entry has its run, and every device's pointers
// lead to runs of that device.
func checkRecords(tx *bolt.Tx) error {
	if tx.Bucket([]byte(bucketMeta)) == nil {
		return nil // empty
	}
	b, err := dataBuckets(tx)
	if err != nil {
		return err
	}
	var errs []error
	more := 0
	report := func(format string, args ...any) {
		if len(errs) < maxCheckErrors {
			errs = append(errs, fmt.Errorf(format, args...))
		} else {
			more++
		}
	}
	runs := 0
	err = b.runs.ForEach(func(k, v []byte) error {
		runs++
		if len(k) != runKeyLen {
			report("run key %x is %d bytes", k, len(k))
			return nil
		}
		r, err := decodeRun(v)
		if err != nil {
			report("run %d: %v", keyID(k), err)
			return nil
		}
		if !bytes.Equal(runKey(r.Start, r.ID), k) {
			report("run %d: its start and id do not make its key %x", r.ID, k)
		}
		if !bytes.Equal(b.keyOf(r.ID), k) {
			report("run %d: not in run_ids", r.ID)
		}
		dev := b.deviceRuns.Bucket([]byte(r.UDID))
		if dev == nil || !bytes.Equal(dev.Get(k), []byte(r.Outcome)) {
			report("run %d: not in device_runs of %s as %s", r.ID, r.UDID, r.Outcome)
		}
		if (b.running.Get(k) != nil) != (r.Outcome == OutcomeRunning) {
			report("run %d: %s, and in running is %v", r.ID, r.Outcome, b.running.Get(k) != nil)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// With every run indexed, equal counts mean no index entry lacks its
	// run.
	if n := b.runIDs.Stats().KeyN; n != runs {
		report("run_ids has %d entries for %d runs", n, runs)
	}
	indexed := 0
	err = b.deviceRuns.ForEachBucket(func(udid []byte) error {
		indexed += b.deviceRuns.Bucket(udid).Stats().KeyN
		return nil
	})
	if err != nil {
		return err
	}
	if indexed != runs {
		report("device_runs has %d entries for %d runs", indexed, runs)
	}
	err = b.devices.ForEach(func(k, v []byte) error {
		var d Device
		if err := json.Unmarshal(v, &d); err != nil {
			report("device %s: %v", k, err)
			return nil
		}
		for _, ref := range []struct {
			name string
			ref  RunRef
		}{{"latest run", d.LastAttempt}, {"latest success", d.LastSuccess}} {
			if ref.ref.ID == 0 {
				continue
			}
			key := b.keyOf(ref.ref.ID)
			if key == nil {
				report("device %s: its %s %d is missing", k, ref.name, ref.ref.ID)
				continue
			}
			if dev := b.deviceRuns.Bucket(k); dev == nil || dev.Get(key) == nil {
				report("device %s: its %s %d is another device's", k, ref.name, ref.ref.ID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if more > 0 {
		errs = append(errs, fmt.Errorf("and %d more problems", more))
	}
	return errors.Join(errs...)
}
