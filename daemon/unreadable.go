package daemon

import (
	"fmt"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/store"
)

// recordUnreadable puts the files the iPhone could not read into the
// run's record, the first store.MaxUnreadableRecorded of them by name.
func recordUnreadable(run *store.Run, res backup.Result) {
	run.UnreadableCount = res.UnreadableCount
	run.Unreadable = nil
	for _, u := range res.Unreadable {
		if len(run.Unreadable) == store.MaxUnreadableRecorded {
			break
		}
		run.Unreadable = append(run.Unreadable, store.UnreadableFile{Name: u.Name, Path: u.Path, Message: u.Message})
	}
}

// keptWithout is the device's note after a backup kept without n files
// the iPhone could not read.
func keptWithout(n int) string {
	if n == 1 {
		return "kept without 1 file the iPhone could not read"
	}
	return fmt.Sprintf("kept without %d files the iPhone could not read", n)
}
