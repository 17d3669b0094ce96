//go:build !linux

package backup

import "os"

// startWriteback is a hint only Linux takes.
func startWriteback(f *os.File, off, n int64) {}

// dropBehind is a hint only Linux takes.
func dropBehind(f *os.File, off, n int64) error { return nil }
