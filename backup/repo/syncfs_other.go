//go:build !linux

package repo

// syncWholeFS is unavailable here; syncTree fsyncs file by file.
func syncWholeFS(string) (bool, error) { return false, nil }
