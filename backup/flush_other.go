//go:build !linux

package backup

// startWriteback is a hint only Linux takes.
func startWriteback(f fileWriter, off, n int64) {}

// dropBehind is a hint only Linux takes.
func dropBehind(f fileWriter, off, n int64) error { return nil }
