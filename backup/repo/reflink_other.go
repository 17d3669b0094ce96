//go:build !linux

package repo

// reflink: only Linux's FICLONE is used so far (macOS's clonefile(2) would
// be the equivalent there).
func reflink(src, dst string) error { return errNoReflink }
