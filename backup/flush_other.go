//go:build !linux

package backup

import "os"

// flushFS does nothing where there is no syncfs(2); the repository's
// commit makes each file durable on its own.
func flushFS(dir string) error { return nil }

// startWriteback is a hint only Linux takes.
func startWriteback(f *os.File, off, n int64) {}

// dropBehind is a hint only Linux takes.
func dropBehind(f *os.File, off, n int64) error { return nil }
