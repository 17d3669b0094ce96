package repo

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// exchange swaps the directories at a and b in one step (renameat2
// RENAME_EXCHANGE, Linux 3.15+; ext4, btrfs, xfs, tmpfs and others). File
// systems and kernels without it say EINVAL, ENOSYS or EOPNOTSUPP.
func exchange(a, b string) error {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, errors.ErrUnsupported):
		return &os.LinkError{Op: "exchange", Old: a, New: b, Err: errors.Join(errNoExchange, err)}
	}
	return &os.LinkError{Op: "exchange", Old: a, New: b, Err: err}
}
