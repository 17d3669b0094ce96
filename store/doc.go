// Package store keeps backupd's history in a bbolt database: the devices
// seen, every backup run with its outcome and cause, and events. The
// daemon owns the database; the CLI reads it only when no daemon runs.
package store
