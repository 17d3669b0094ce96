//go:build failpoint

package main

// buildFlags are the go build flags the end-to-end tests build backupd
// with: a test binary with failpoints builds a backupd with them too,
// for the tests that arm them (TestTortureKill).
var buildFlags = []string{"-tags", "failpoint"}
