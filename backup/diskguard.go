package backup

import "fmt"

// The byte total a phone announces in DLMessageUploadFiles is its
// estimate, and real iPhones send more than it (2.0 MB of an announced
// 1.4 MB in the field), so it bounds nothing. What bounds a round is
// what the disk can safely take: the diskGuard keeps the configured free
// space margin free while files stream in, and Options.MaxFileSize
// bounds one file (a file that never ends is hostile).

// Bounds of the interval between two free-space checks: the margin left
// above the configured one is halved at each check, so checks come
// faster as the disk fills, and each costs one statfs.
const (
	guardMinStep = 1 << 20
	guardMaxStep = 64 << 20
)

// diskGuard watches the free space of the disk staging is on.
type diskGuard struct {
	dir    string
	margin uint64
	free   func(dir string) (uint64, error)
	// left is how many bytes may arrive before the next check.
	left int64
}

func newDiskGuard(dir string, margin int64) *diskGuard {
	return &diskGuard{dir: dir, margin: uint64(max(margin, 0)), free: FreeSpace}
}

// received counts n more bytes on their way to the disk, and checks the
// free space when it is due. An error wraps ENOSPC: the disk has less
// than the margin free, and what is received must not be stored. It
// wraps the same errno as a real full disk, on every platform.
func (g *diskGuard) received(n int64) error {
	if g == nil || g.dir == "" {
		return nil
	}
	g.left -= n
	if g.left > 0 {
		return nil
	}
	free, err := g.free(g.dir)
	if err != nil {
		// Unknown: the writes themselves will meet ENOSPC if it comes.
		g.left = guardMinStep
		return nil
	}
	if free <= g.margin {
		g.left = 0
		return fmt.Errorf("%d bytes free on the backup disk, policy.free_space_margin keeps %d: %w", free, g.margin, errNoSpace)
	}
	g.left = min(max(int64((free-g.margin)/2), guardMinStep), guardMaxStep)
	return nil
}
