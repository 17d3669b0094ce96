package main

import (
	"fmt"
	"strings"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
)

// maxUnreadableShown bounds the names status prints on its one line.
const maxUnreadableShown = 3

// unreadableNote says which files the iPhone could not read in run r, if
// any: a kept backup lacks them, so the person should know which and
// what to do. It is "" when there were none.
func unreadableNote(r *api.Run) string {
	if r == nil || r.UnreadableCount == 0 {
		return ""
	}
	var names []string
	for _, u := range r.Unreadable {
		if len(names) == maxUnreadableShown {
			break
		}
		name := u.Name
		if name == "" {
			name = u.Path
		}
		names = append(names, name)
	}
	if more := r.UnreadableCount - len(names); more > 0 {
		names = append(names, fmt.Sprintf("%d more", more))
	}
	what := "the backup was kept without them"
	if r.Outcome != api.OutcomeSuccess {
		what = "the backup was not kept"
	}
	files := "files"
	if r.UnreadableCount == 1 {
		files = "file"
	}
	note := fmt.Sprintf("; the iPhone could not read %d %s (%s), %s", r.UnreadableCount, files, strings.Join(names, ", "), what)
	if r.Cause != cause.DeviceUploadErrors || r.Outcome == api.OutcomeSuccess {
		// A failed run with this cause has said the fix already.
		note += ". Fix: " + cause.Lookup(cause.DeviceUploadErrors).Fix
	}
	return note
}
