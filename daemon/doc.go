// Package daemon orchestrates backups: one actor per device, policy,
// history, local API.
//
// Each attached iPhone gets its own actor that walks attached → settling →
// checking → backing up → done, failed or skipped, and records every
// attempt with its cause (package cause). Policy decides whether a backup
// is due; the history lives in package store; the local API serves the
// CLI over a unix socket.
//
// # The path of a plug-in
//
// usbmux's Presence reports a USB device once it has stayed attached for
// the settle time (the API shows it as settling until then); a Wi-Fi
// device at once. The daemon hands each change to the device's actor
// (actor.go), which runs one attempt at a time: check trust (raising the
// Trust prompt on an unpaired phone), read the device's facts, apply the
// policy (policy.go: min_interval, quiet hours, battery, free space), take
// one of max_concurrent backup slots, and run the backup engine under a
// stall watchdog. Every state change is kept in the device's recent
// transitions, logged and published on the event stream (events.go);
// every attempt is a run record, every decision against one a skipped run
// with its cause, recorded once per plug-in however often the condition
// is rechecked. A plug-in inside min_interval records nothing unless
// policy.record_recent is set. After a transient failure the actor tries
// again with backoff while the phone stays connected; after a success it
// backs up again when min_interval has passed. A detach cancels whatever
// the actor is doing: a backup ends as disconnected and the engine drops
// its staging, leaving the last good backup as it was.
//
// # Start and stop
//
// Run refuses to start when another backupd holds the state_dir (its
// history database is locked: ErrAlreadyRunning) or the backup_dir, and
// touches nothing of theirs. It then recovers what a crash left: staging
// areas are finished or discarded (backup/repo's Recover), and runs left
// running are recorded interrupted. When Run's context ends, running
// backups are cancelled, recorded interrupted and their staging
// discarded, within Config.ShutdownTimeout.
//
// # Local API
//
// HTTP over <state_dir>/backupd.sock (mode 0660) with the paths and types
// of package api; package client is its Go client. A socket left by a
// daemon that died is replaced only when nothing answers on it. Nothing
// listens on TCP unless api.tcp is set, and then only on loopback with a
// token.
//
// # Logging
//
// zerolog, human-readable (LogConsole) or JSON (LogJSON); slog output of
// the packages below (usbmux, backup, repo, and go-ios once
// RouteGoIOSLogs is called) is bridged into it with anything that could
// be key material from a pair record redacted.
package daemon
