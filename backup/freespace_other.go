//go:build !linux && !darwin && !windows

package backup

import (
	"errors"
	"fmt"
)

// freeBytes is not implemented here; the device is told the host cannot
// say, and decides for itself.
func freeBytes(dir string) (uint64, error) {
	return 0, fmt.Errorf("free space of %s: %w", dir, errors.ErrUnsupported)
}
