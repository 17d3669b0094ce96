//go:build !linux && !darwin && !windows

package backup

import (
	"errors"
	"fmt"
)

// FreeSpace is not implemented here: the device is told the host cannot
// say, and decides for itself.
func FreeSpace(dir string) (uint64, error) {
	return 0, fmt.Errorf("free space of %s: %w", dir, errors.ErrUnsupported)
}
