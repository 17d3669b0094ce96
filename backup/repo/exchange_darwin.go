package repo

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// exchange swaps the directories at a and b in one step (renamex_np
// RENAME_SWAP, macOS 10.12+ on APFS); HFS+ and others say ENOTSUP.
func exchange(a, b string) error {
	err := unix.RenamexNp(a, b, unix.RENAME_SWAP)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, errors.ErrUnsupported):
		return &os.LinkError{Op: "exchange", Old: a, New: b, Err: errors.Join(errNoExchange, err)}
	}
	return &os.LinkError{Op: "exchange", Old: a, New: b, Err: err}
}
