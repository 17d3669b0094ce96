package backup

import (
	"fmt"
)

// A phone can create files without sending a byte (empty files, new
// directories): free space alone does not bound what it costs the host.
// Each file costs an inode, and a file system out of inodes is as full as
// one out of blocks, for every program on the machine. The budget bounds
// the files and directories one backup creates, and checks the file
// system's free inodes as they are created, so that a flood ends the
// backup as host_disk_full while the machine still has inodes to work
// with.

// DefaultMaxFiles bounds the files and directories one backup may create.
// A real iPhone's backup holds a few hundred thousand files; a full
// backup of the largest creates under two million.
const DefaultMaxFiles = 4_000_000

// Free inodes: a backup stops once fewer than 1/inodeReserveFraction of
// the file system's inodes are left. They are checked (a statfs, about a
// microsecond) at most every inodeCheckEvery creations, and more often as
// the reserve nears, so that a flood cannot pass it between two checks.
const (
	inodeReserveFraction = 100 // 1%
	inodeCheckEvery      = 64
)

// budget counts what one backup created.
type budget struct {
	dir       string // measured for free inodes
	max       int64
	created   int64
	nextCheck int64 // the creation count at which free inodes are checked
}

func newBudget(dir string, max int64) *budget {
	if max <= 0 {
		max = DefaultMaxFiles
	}
	return &budget{dir: dir, max: max}
}

// create charges one new file or directory. Its error wraps the
// platform's "no space" errno, so that it is classified host_disk_full
// and the device hears ENOSPC, as for a full disk.
func (b *budget) create() error {
	if b == nil {
		return nil
	}
	b.created++
	if b.created > b.max {
		return fmt.Errorf("the device created more than %d files and directories in this backup (backup.max_files): %w", b.max, errNoSpace)
	}
	if b.created < b.nextCheck {
		return nil
	}
	b.nextCheck = b.created + inodeCheckEvery
	free, total, ok := freeInodes(b.dir)
	if !ok || total == 0 {
		return nil // no inode limit here (btrfs, ZFS, Windows)
	}
	reserve := max(total/inodeReserveFraction, 1)
	if free < reserve {
		return fmt.Errorf("only %d inodes are free on the backup disk (%d kept in reserve) after the device created %d files: %w", free, reserve, b.created, errNoSpace)
	}
	// A creation costs an inode, a CreateDirectory a few: check again
	// before half of what is left above the reserve could be gone. (The
	// upload workers may still hold up to a hundred creations; on a disk
	// whose 1% is fewer inodes than that, a flood can meet the real
	// ENOSPC first, which is host_disk_full all the same.)
	b.nextCheck = b.created + min(inodeCheckEvery, max(int64(free-reserve)/2, 1))
	return nil
}
