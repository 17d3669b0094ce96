//go:build !failpoint

package main

// buildFlags: without the failpoint tag, backupd is built as released.
var buildFlags []string
