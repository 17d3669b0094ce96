//go:build linux || darwin

package backup

import "golang.org/x/sys/unix"

// FreeSpace returns the bytes an unprivileged user may still write on the
// file system holding dir (f_bavail, not f_bfree: the blocks reserved for
// root are not ours to promise), as libimobiledevice reports it.
func FreeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
