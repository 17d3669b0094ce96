package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/cause"
)

// buckets are the top-level buckets of one transaction.
type buckets struct {
	devices, runs, runIDs, deviceRuns, running *bolt.Bucket
}

// dataBuckets returns tx's buckets, or an error naming the first one
// missing.
func dataBuckets(tx *bolt.Tx) (buckets, error) {
	var b buckets
	for _, p := range []struct {
		name string
		dst  **bolt.Bucket
	}{
		{bucketDevices, &b.devices},
		{bucketRuns, &b.runs},
		{bucketRunIDs, &b.runIDs},
		{bucketDeviceRuns, &b.deviceRuns},
		{bucketRunning, &b.running},
	} {
		if *p.dst = tx.Bucket([]byte(p.name)); *p.dst == nil {
			return buckets{}, fmt.Errorf("bucket %s is missing", p.name)
		}
	}
	// Run keys and ids grow with time, so these buckets are appended to;
	// bbolt's default of splitting pages half full would leave most of
	// every page empty.
	b.runs.FillPercent, b.runIDs.FillPercent = appendFill, appendFill
	return b, nil
}

// appendFill is the FillPercent of buckets that grow at the end.
const appendFill = 0.9

// writeBuckets is dataBuckets for a write: Open made them all, so one
// missing means damage.
func (s *Store) writeBuckets(tx *bolt.Tx) (buckets, error) {
	b, err := dataBuckets(tx)
	if err != nil {
		return buckets{}, corruptError(s.path, err)
	}
	return b, nil
}

// index adds the run at key to the indexes, or updates its outcome there.
func (b buckets) index(key []byte, udid string, outcome Outcome) error {
	if err := b.runIDs.Put(idKey(keyID(key)), key); err != nil {
		return fmt.Errorf("index run %d: %w", keyID(key), err)
	}
	dev, err := b.deviceRuns.CreateBucketIfNotExists([]byte(udid))
	if err != nil {
		return fmt.Errorf("index run %d under %s: %w", keyID(key), udid, err)
	}
	dev.FillPercent = appendFill
	if err := dev.Put(key, []byte(outcome)); err != nil {
		return fmt.Errorf("index run %d under %s: %w", keyID(key), udid, err)
	}
	if outcome == OutcomeRunning {
		err = b.running.Put(key, []byte{})
	} else {
		err = b.running.Delete(key)
	}
	if err != nil {
		return fmt.Errorf("index run %d as %s: %w", keyID(key), outcome, err)
	}
	return nil
}

// putRun stores r at key over old (the record it replaces, or nil) and
// indexes it.
func (b buckets) putRun(key []byte, r Run, old []byte) error {
	data, err := encodeOver(old, r)
	if err != nil {
		return fmt.Errorf("encode run %d: %w", r.ID, err)
	}
	if err := b.runs.Put(key, data); err != nil {
		return fmt.Errorf("store run %d: %w", r.ID, err)
	}
	return b.index(key, r.UDID, r.Outcome)
}

// keyOf returns the key of run id, or nil.
func (b buckets) keyOf(id RunID) []byte {
	return b.runIDs.Get(idKey(id))
}

// getRun reads the run at key; the raw record comes back too, for
// encodeOver.
func (b buckets) getRun(key []byte) (Run, []byte, error) {
	raw := b.runs.Get(key)
	if raw == nil {
		return Run{}, nil, fmt.Errorf("run %d: %w", keyID(key), ErrNotFound)
	}
	r, err := decodeRun(raw)
	if err != nil {
		return Run{}, nil, fmt.Errorf("run %d: %w: %w", keyID(key), ErrCorrupt, err)
	}
	return r, raw, nil
}

// getDevice reads the device udid; ok is false when there is none.
func (b buckets) getDevice(udid string) (d Device, raw []byte, ok bool, err error) {
	raw = b.devices.Get([]byte(udid))
	if raw == nil {
		return Device{}, nil, false, nil
	}
	if d, err = decodeDevice(raw); err != nil {
		return Device{}, nil, false, fmt.Errorf("device %s: %w: %w", udid, ErrCorrupt, err)
	}
	return d, raw, true, nil
}

func (b buckets) putDevice(d Device, old []byte) error {
	data, err := encodeOver(old, d)
	if err != nil {
		return fmt.Errorf("encode device %s: %w", d.UDID, err)
	}
	if err := b.devices.Put([]byte(d.UDID), data); err != nil {
		return fmt.Errorf("store device %s: %w", d.UDID, err)
	}
	return nil
}

// newer reports whether the run at key is later than the one ref points
// to (or ref points nowhere).
func (b buckets) newer(key []byte, ref RunRef) bool {
	if ref.ID == 0 {
		return true
	}
	cur := b.keyOf(ref.ID)
	return cur == nil || bytes.Compare(key, cur) >= 0
}

// attempted records on its device that the run r at key happened: the
// device is created if it is new, and its LastAttempt moves to r unless a
// later run is there already.
func (b buckets) attempted(key []byte, r Run) error {
	d, raw, ok, err := b.getDevice(r.UDID)
	if err != nil {
		return err
	}
	switch {
	case b.newer(key, d.LastAttempt):
		if !ok {
			d = Device{UDID: r.UDID, Name: r.DeviceName, IOSVersion: r.IOSVersion, FirstSeen: r.Start, LastSeen: r.Start}
		}
		d.LastAttempt = RunRef{ID: r.ID, Time: r.Start}
	case ok:
		return nil // a later run is the latest already
	}
	return b.putDevice(d, raw)
}

// BeginRun records that a backup started: r is stored as running, with a
// new id, and becomes its device's LastAttempt. r needs UDID, Start and
// Trigger; its ID, Outcome and End are ignored. It returns the record as
// stored, which is what FinishRun takes back.
func (s *Store) BeginRun(r Run) (Run, error) {
	r.ID, r.Outcome, r.End = 0, OutcomeRunning, time.Time{}
	if err := validateNew(r); err != nil {
		return Run{}, err
	}
	err := s.update(func(tx *bolt.Tx) error {
		return s.create(tx, &r)
	})
	if err != nil {
		return Run{}, fmt.Errorf("begin run for %s: %w", r.UDID, err)
	}
	return r, nil
}

// RecordSkip records a run that was decided against before it started:
// r is stored as skipped with its cause (unknown when r has none) and
// note, and becomes its device's LastAttempt. r needs UDID, Start and
// Trigger; End defaults to Start.
func (s *Store) RecordSkip(r Run) (Run, error) {
	r.ID, r.Outcome = 0, OutcomeSkipped
	if r.End.IsZero() {
		r.End = r.Start
	}
	normalise(&r)
	if err := validateNew(r); err != nil {
		return Run{}, err
	}
	err := s.update(func(tx *bolt.Tx) error {
		return s.create(tx, &r)
	})
	if err != nil {
		return Run{}, fmt.Errorf("record skipped run for %s: %w", r.UDID, err)
	}
	return r, nil
}

// create gives r an id and stores it as a new run.
func (s *Store) create(tx *bolt.Tx, r *Run) error {
	b, err := s.writeBuckets(tx)
	if err != nil {
		return err
	}
	seq, err := b.runs.NextSequence()
	if err != nil {
		return fmt.Errorf("new run id: %w", err)
	}
	r.ID = RunID(seq)
	key := runKey(r.Start, r.ID)
	if err := b.putRun(key, *r, nil); err != nil {
		return err
	}
	return b.attempted(key, *r)
}

// FinishRun records how a running run ended. r is the record BeginRun
// returned, with its outcome (any but running), End and results filled
// in; every field but the ones that identify the run (ID, UDID, Start,
// Trigger, which must be unchanged or zero) replaces the stored one. A
// failed, skipped or interrupted run without a cause gets unknown (or
// interrupted). A successful backup (not a restore) becomes its device's
// LastSuccess. It returns
// the record as stored; ErrNotRunning if the run has already ended.
func (s *Store) FinishRun(r Run) (Run, error) {
	if !r.Outcome.final() {
		return Run{}, fmt.Errorf("finish run %d: %w: outcome %q is not an end", r.ID, ErrInvalid, r.Outcome)
	}
	if r.End.IsZero() {
		return Run{}, fmt.Errorf("finish run %d: %w: no end time", r.ID, ErrInvalid)
	}
	normalise(&r)
	var stored Run
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		stored, err = s.finish(tx, r)
		return err
	})
	if err != nil {
		return Run{}, fmt.Errorf("finish run %d: %w", r.ID, err)
	}
	return stored, nil
}

// finish is FinishRun's transaction, on a checked r.
func (s *Store) finish(tx *bolt.Tx, r Run) (Run, error) {
	b, err := s.writeBuckets(tx)
	if err != nil {
		return Run{}, err
	}
	key := b.keyOf(r.ID)
	if key == nil {
		return Run{}, ErrNotFound
	}
	key = bytes.Clone(key)
	old, raw, err := b.getRun(key)
	if err != nil {
		return Run{}, err
	}
	if old.Outcome != OutcomeRunning {
		return Run{}, fmt.Errorf("%w: it ended as %s", ErrNotRunning, old.Outcome)
	}
	if err := sameRun(old, r); err != nil {
		return Run{}, err
	}
	r.UDID, r.Start, r.Trigger = old.UDID, old.Start, old.Trigger
	if err := b.putRun(key, r, raw); err != nil {
		return Run{}, err
	}
	if r.Outcome != OutcomeSuccess || r.Kind == KindRestore {
		return r, nil
	}
	d, draw, ok, err := b.getDevice(r.UDID)
	if err != nil {
		return Run{}, err
	}
	if !ok {
		// BeginRun made it; only damage removes it.
		d = Device{UDID: r.UDID, Name: r.DeviceName, IOSVersion: r.IOSVersion, FirstSeen: r.Start, LastSeen: r.Start}
	}
	if !b.newer(key, d.LastSuccess) {
		return r, nil
	}
	d.LastSuccess = RunRef{ID: r.ID, Time: r.End}
	return r, b.putDevice(d, draw)
}

// sameRun checks that r, when it sets them, has the identity of stored.
func sameRun(stored, r Run) error {
	var errs []error
	if r.UDID != "" && r.UDID != stored.UDID {
		errs = append(errs, fmt.Errorf("UDID %s, not %s", r.UDID, stored.UDID))
	}
	if !r.Start.IsZero() && !r.Start.Equal(stored.Start) {
		errs = append(errs, fmt.Errorf("start %v, not %v", r.Start, stored.Start))
	}
	if r.Trigger != "" && r.Trigger != stored.Trigger {
		errs = append(errs, fmt.Errorf("trigger %s, not %s", r.Trigger, stored.Trigger))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// UpsertDevice records that the device was seen at seen, with its facts:
// it is created when new, its non-empty facts replace the stored ones, and
// FirstSeen and LastSeen widen to include seen.
func (s *Store) UpsertDevice(f DeviceFacts, seen time.Time) error {
	if f.UDID == "" || len(f.UDID) > maxUDIDLen || seen.IsZero() {
		return fmt.Errorf("upsert device %q: %w: needs a UDID and a time", f.UDID, ErrInvalid)
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, err := s.writeBuckets(tx)
		if err != nil {
			return err
		}
		d, raw, ok, err := b.getDevice(f.UDID)
		if err != nil {
			return err
		}
		if !ok {
			d = Device{UDID: f.UDID}
		}
		if f.Name != "" {
			d.Name = f.Name
		}
		if f.ProductType != "" {
			d.ProductType = f.ProductType
		}
		if f.IOSVersion != "" {
			d.IOSVersion = f.IOSVersion
		}
		if d.FirstSeen.IsZero() || seen.Before(d.FirstSeen) {
			d.FirstSeen = seen
		}
		if seen.After(d.LastSeen) {
			d.LastSeen = seen
		}
		return b.putDevice(d, raw)
	})
	if err != nil {
		return fmt.Errorf("upsert device %s: %w", f.UDID, err)
	}
	return nil
}

// interruptedNote explains End on a run MarkInterrupted ended.
const interruptedNote = "backupd stopped while this backup ran; the end time is when the next start found it"

// MarkInterrupted ends every run still marked running as interrupted,
// with cause interrupted and End now (or its start, if now is before it).
// The daemon calls it when it starts, before it begins any run: a run
// still running then is one a crash or a kill left behind. It returns the
// runs it ended, oldest first.
func (s *Store) MarkInterrupted(now time.Time) ([]Run, error) {
	var ended []Run
	err := s.update(func(tx *bolt.Tx) error {
		b, err := s.writeBuckets(tx)
		if err != nil {
			return err
		}
		var keys [][]byte
		if err := b.running.ForEach(func(k, _ []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		}); err != nil {
			return err
		}
		for _, key := range keys {
			r, raw, err := b.getRun(key)
			if errors.Is(err, ErrNotFound) {
				// An index entry without its run: drop it.
				if err := b.running.Delete(key); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			r.Outcome, r.Cause = OutcomeInterrupted, cause.Interrupted
			r.End = now
			if r.End.Before(r.Start) {
				r.End = r.Start
			}
			if r.Note == "" {
				r.Note = interruptedNote
			}
			if err := b.putRun(key, r, raw); err != nil {
				return err
			}
			ended = append(ended, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mark interrupted runs: %w", err)
	}
	return ended, nil
}
