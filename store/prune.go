package store

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention says how much history to keep of each device. A zero field
// sets no limit; both zero keep everything.
type Retention struct {
	// MaxRuns keeps each device's newest MaxRuns runs.
	MaxRuns int
	// MaxAge keeps the runs that started less than MaxAge before now.
	MaxAge time.Duration
}

func (r Retention) validate() error {
	if r.MaxRuns < 0 || r.MaxAge < 0 {
		return fmt.Errorf("%w: retention of %d runs and %v is negative", ErrInvalid, r.MaxRuns, r.MaxAge)
	}
	return nil
}

// Prune deletes the runs that ret does not keep, device by device, in one
// transaction, and returns how many it deleted. A run beyond either limit
// goes, except a running one and each device's latest run and latest
// success, which status shows.
func (s *Store) Prune(now time.Time, ret Retention) (int, error) {
	return s.prune(now, ret, nil)
}

// PruneDevice is Prune for one device, for a device whose retention is
// configured apart from the others.
func (s *Store) PruneDevice(udid string, now time.Time, ret Retention) (int, error) {
	return s.prune(now, ret, []byte(udid))
}

func (s *Store) prune(now time.Time, ret Retention, only []byte) (int, error) {
	if err := ret.validate(); err != nil {
		return 0, err
	}
	if ret == (Retention{}) {
		return 0, nil
	}
	deleted := 0
	err := s.update(func(tx *bolt.Tx) error {
		b, err := s.writeBuckets(tx)
		if err != nil {
			return err
		}
		var udids [][]byte
		if only != nil {
			udids = [][]byte{only}
		} else if err := b.deviceRuns.ForEachBucket(func(k []byte) error {
			udids = append(udids, bytes.Clone(k))
			return nil
		}); err != nil {
			return err
		}
		for _, udid := range udids {
			n, err := b.pruneDevice(udid, now, ret)
			deleted += n
			if err != nil {
				return fmt.Errorf("device %s: %w", udid, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune history: %w", err)
	}
	return deleted, nil
}

func (b buckets) pruneDevice(udid []byte, now time.Time, ret Retention) (int, error) {
	dev := b.deviceRuns.Bucket(udid)
	if dev == nil {
		return 0, nil
	}
	d, _, _, err := b.getDevice(string(udid))
	if err != nil {
		return 0, err
	}
	keep := func(k []byte) bool {
		return b.running.Get(k) != nil || keyID(k) == d.LastAttempt.ID || keyID(k) == d.LastSuccess.ID
	}
	var cutoff []byte
	if ret.MaxAge > 0 {
		cutoff = timeKey(now.Add(-ret.MaxAge))
	}
	// Newest first, counting every run, so that MaxRuns counts the
	// protected runs among the newest too.
	var doomed [][]byte
	c := dev.Cursor()
	i := 0
	for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
		tooMany := ret.MaxRuns > 0 && i >= ret.MaxRuns
		tooOld := cutoff != nil && bytes.Compare(k, cutoff) < 0
		i++
		if (tooMany || tooOld) && !keep(k) {
			doomed = append(doomed, bytes.Clone(k))
		}
	}
	for _, k := range doomed {
		if err := b.runs.Delete(k); err != nil {
			return 0, fmt.Errorf("delete run %d: %w", keyID(k), err)
		}
		if err := b.runIDs.Delete(idKey(keyID(k))); err != nil {
			return 0, fmt.Errorf("delete run %d: %w", keyID(k), err)
		}
		if err := dev.Delete(k); err != nil {
			return 0, fmt.Errorf("delete run %d: %w", keyID(k), err)
		}
	}
	return len(doomed), nil
}
