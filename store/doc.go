// Package store keeps backupd's history in a bbolt database (history.db in
// state_dir): the devices seen, with their latest facts, and one record per
// backup run with its outcome and cause. The daemon owns the database; the
// CLI opens it read-only only when no daemon runs, since bbolt lets one
// process at a time write it.
//
// # Layout (schema version 2)
//
// Top-level buckets:
//
//	meta         "schema" → the schema version in decimal ("2")
//	devices      UDID → Device as JSON (facts, first and last seen, and the
//	             ids of the device's latest run and latest success)
//	runs         run key → Run as JSON; one record per run
//	run_ids      run id, 8 bytes big-endian → run key
//	device_runs  one nested bucket per UDID: run key → outcome ("failed")
//	running      run key → empty, for every run still marked running
//
// A run key is 16 bytes: the run's start in Unix nanoseconds, big-endian
// with the sign bit flipped, then its id, big-endian. Byte order is time
// order, so time ranges are cursor seeks and the newest run is the last
// key. Run ids come from the runs bucket's sequence and are never reused.
//
// runs, devices and meta hold the data; run_ids, device_runs and running
// are indexes over runs that every write keeps in the same transaction,
// so that a device's history, a run by id and the runs a crash left
// running are found without scanning every record. Schema version 1 is
// the same layout without the indexes; opening it builds them (see
// currentSchema).
//
// Every change of state is one bbolt transaction, so a crash leaves either
// the state before it or the state after it. Records are JSON so that a
// version of backupd reads records with fields a newer one added, and
// keeps those fields when it rewrites the record.
//
// A file that is not a readable history (garbage, truncated, from a newer
// backupd) is reported with its path and never written to: Open does not
// start a new history over an old one.
package store
