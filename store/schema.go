package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout this version of backupd reads and writes
// (see the package documentation).
const SchemaVersion = 2

// Bucket names and the meta keys.
const (
	bucketMeta       = "meta"
	bucketDevices    = "devices"
	bucketRuns       = "runs"
	bucketRunIDs     = "run_ids"
	bucketDeviceRuns = "device_runs"
	bucketRunning    = "running"

	keySchema = "schema"
)

// migration upgrades a database from schema version from to from+1,
// inside the transaction that upgrades it all the way.
type migration struct {
	from int
	what string // for the error when it fails
	run  func(tx *bolt.Tx) error
}

// schema is a version and the migrations that lead to it: the current one
// in production, others in tests.
type schema struct {
	version    int
	migrations []migration
	// create makes the buckets of this version in an empty database.
	create func(tx *bolt.Tx) error
}

// currentSchema is the schema this version of backupd writes. To change
// the layout: raise SchemaVersion, add the migration from the version
// before (it runs in the upgrade's one transaction, with the ones before
// it), and make create build the new layout directly.
//
// Version 1 is the layout without the indexes. No release wrote it: its
// migration is the index rebuild, there from day one so that the upgrade
// path is used and tested before the first real change needs it.
func currentSchema() schema {
	return schema{
		version: SchemaVersion,
		migrations: []migration{
			{from: 1, what: "index the runs by id, by device and by running", run: buildIndexes},
		},
		create: createV2,
	}
}

// createV2 makes the buckets of schema 2.
func createV2(tx *bolt.Tx) error {
	for _, name := range []string{bucketMeta, bucketDevices, bucketRuns, bucketRunIDs, bucketDeviceRuns, bucketRunning} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// readVersion returns the schema version of the database in tx: 0 for a
// bbolt file with nothing in it yet (one just created), an error for one
// that holds buckets but is not a history.
func readVersion(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		var names []string
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, strconv.Quote(string(name)))
			return nil
		})
		if len(names) == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("it is a bbolt database but not a backupd history (no meta bucket; it has %v)", names)
	}
	raw := meta.Get([]byte(keySchema))
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 1 {
		return 0, fmt.Errorf("its schema version %q is not a version", raw)
	}
	return v, nil
}

func newerError(path string, version, known int) error {
	return &fileError{ErrNewerSchema, nil, fmt.Sprintf(
		"history database %s has schema version %d, newer than the %d this backupd knows: a newer backupd wrote it; run that version (the file was left as it is)",
		path, version, known)}
}

// readable says whether a read-only store can read a database of version.
func (sc schema) readable(path string, version int) error {
	switch {
	case version > sc.version:
		return newerError(path, version, sc.version)
	case version != 0 && version < sc.version:
		return &fileError{ErrOlderSchema, nil, fmt.Sprintf(
			"history database %s has schema version %d and this backupd reads %d: start the backupd daemon once to upgrade it",
			path, version, sc.version)}
	}
	// Version 0 is an empty database: it reads as an empty history.
	return nil
}

// prepare brings a database opened for writing to sc.version: it creates
// the buckets of a new one, or runs the migrations of an older one, in one
// transaction, so an upgrade that fails leaves the old version intact.
// seen is the version inspect found, to save a copy before an upgrade.
func (s *Store) prepare(sc schema, seen int) error {
	if seen > 0 && seen < sc.version {
		// The transaction makes the upgrade all or nothing; the copy is
		// for a migration that is wrong, which no transaction undoes.
		backup := fmt.Sprintf("%s.schema-%d.bak", s.path, seen)
		err := s.view(func(tx *bolt.Tx) error { return tx.CopyFile(backup, fileMode) })
		if err != nil {
			return fmt.Errorf("history database %s: save a copy as %s before upgrading it: %w", s.path, backup, err)
		}
	}
	err := s.update(func(tx *bolt.Tx) error {
		// Read again: another process may have changed the file between
		// inspect and this open.
		v, err := readVersion(tx)
		if err != nil {
			return corruptError(s.path, err)
		}
		switch {
		case v > sc.version:
			return newerError(s.path, v, sc.version)
		case v == sc.version:
			if _, err := dataBuckets(tx); err != nil {
				return corruptError(s.path, err)
			}
			return errUpToDate // nothing to write: roll back
		case v == 0:
			if err := sc.create(tx); err != nil {
				return fmt.Errorf("history database %s: %w", s.path, err)
			}
			return putVersion(tx, sc.version)
		}
		from := v
		for v < sc.version {
			m, ok := findMigration(sc.migrations, v)
			if !ok {
				return fmt.Errorf("history database %s has schema version %d and this backupd has no upgrade from it", s.path, v)
			}
			if err := m.run(tx); err != nil {
				return fmt.Errorf("upgrade history database %s from schema %d to %d (%s): %w; it was left at schema %d", s.path, v, v+1, m.what, err, from)
			}
			v++
		}
		if err := putVersion(tx, v); err != nil {
			return fmt.Errorf("history database %s: %w", s.path, err)
		}
		// A database that has a version but lost a bucket is damaged,
		// and every write would fail on it in a less clear way.
		if _, err := dataBuckets(tx); err != nil {
			return corruptError(s.path, err)
		}
		return nil
	})
	if errors.Is(err, errUpToDate) {
		return nil
	}
	return err
}

// errUpToDate ends the transaction of prepare without a commit when there
// is nothing to change, which is every open but the first and upgrades.
var errUpToDate = errors.New("schema up to date")

func findMigration(ms []migration, from int) (migration, bool) {
	for _, m := range ms {
		if m.from == from {
			return m, true
		}
	}
	return migration{}, false
}

func putVersion(tx *bolt.Tx, v int) error {
	meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
	if err != nil {
		return fmt.Errorf("create bucket meta: %w", err)
	}
	return meta.Put([]byte(keySchema), []byte(strconv.Itoa(v)))
}

// buildIndexes is the upgrade from schema 1, which had only meta, devices
// and runs: it creates run_ids, device_runs and running from the runs. It
// is also what to run should the indexes ever need rebuilding.
func buildIndexes(tx *bolt.Tx) error {
	runs := tx.Bucket([]byte(bucketRuns))
	if runs == nil {
		return errors.New("no runs bucket")
	}
	for _, name := range []string{bucketRunIDs, bucketDeviceRuns, bucketRunning} {
		if tx.Bucket([]byte(name)) != nil {
			if err := tx.DeleteBucket([]byte(name)); err != nil {
				return fmt.Errorf("delete bucket %s: %w", name, err)
			}
		}
		if _, err := tx.CreateBucket([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	b, err := dataBuckets(tx)
	if err != nil {
		return err
	}
	var maxID RunID
	err = runs.ForEach(func(k, v []byte) error {
		if len(k) != runKeyLen {
			return fmt.Errorf("run key %x: %d bytes, not %d", k, len(k), runKeyLen)
		}
		// Only the fields the indexes need: old records may lack others.
		var r struct {
			ID      RunID   `json:"id"`
			UDID    string  `json:"udid"`
			Outcome Outcome `json:"outcome"`
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("run %x: %w", k, err)
		}
		if r.ID != keyID(k) || r.UDID == "" {
			return fmt.Errorf("run %x: id %d and UDID %q do not match its key", k, r.ID, r.UDID)
		}
		maxID = max(maxID, r.ID)
		key := bytes.Clone(k)
		return b.index(key, r.UDID, r.Outcome)
	})
	if err != nil {
		return err
	}
	// Ids must never be reused, whatever the old sequence said.
	if runs.Sequence() < uint64(maxID) {
		return runs.SetSequence(uint64(maxID))
	}
	return nil
}
