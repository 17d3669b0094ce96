//go:build !linux && !darwin && !windows

package daemon

import (
	"errors"
	"fmt"
)

// freeSpace is not implemented here; the free space check is then left
// to the backup itself, which reports a full disk when it meets one.
func freeSpace(dir string) (uint64, error) {
	return 0, fmt.Errorf("free space of %s: %w", dir, errors.ErrUnsupported)
}
