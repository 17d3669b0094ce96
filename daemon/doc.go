// Package daemon orchestrates backups: one actor per device, policy,
// history, local API.
//
// Each attached iPhone gets its own actor that walks attached → settling →
// checking → backing up → done, failed or skipped, and records every
// attempt with its cause (package cause). Policy decides whether a backup
// is due; the history lives in package store; the local API serves the
// CLI over a unix socket.
package daemon
