//go:build linux

package backup

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing n bytes of f from off
// to disk, without waiting (sync_file_range SYNC_FILE_RANGE_WRITE). It
// is a hint: errors are for the later fsync to report.
func startWriteback(f fileWriter, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// dropBehind waits until n bytes of f from off are on disk, then drops
// them from the page cache (see newFile.Write).
func dropBehind(f fileWriter, off, n int64) error {
	err := unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	if err != nil {
		return &os.PathError{Op: "sync_file_range", Path: f.Name(), Err: err}
	}
	_ = unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED)
	return nil
}
