package repo

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
)

// A backup the iPhone called successful is kept even when the iPhone
// could not read some of its own files while it sent them (each came as
// an error block, "Input/output error", while the final ErrorCode was 0).
// Such a file is in the backup as what arrived of it, usually nothing,
// while Manifest.db records its real size, so the size check alone would
// refuse the whole backup for it — and the next one, and the one after,
// for as long as the phone cannot read that file. Instead the backup
// carries the list of those files beside its own, and Verify leaves them
// out of the presence and size checks and says so: every other file is
// still checked. The list is written by the host after the device is done,
// over anything the device may have put under that name.

// UnreadableName is the list's name in a backup's directory, beside
// Manifest.db. It is not one of Apple's files; Finder, iTunes and
// idevicebackup2 ignore it.
const UnreadableName = "backupd-unreadable.json"

// maxUnreadableSize bounds the list Verify reads.
const maxUnreadableSize = 16 << 20

// UnreadableFile is one file the iPhone could not read.
type UnreadableFile struct {
	// Name is the iPhone's own name for the file ("Domain/path"), as the
	// device sent it.
	Name string `json:"name,omitempty"`
	// Path is where the device put it in the backup, as it named it
	// ("<UDID>/Snapshot/xx/<fileID>").
	Path string `json:"path"`
	// Message is the device's error ("Input/output error").
	Message string `json:"message,omitempty"`
}

// FileID is the file's fileID, the last element of Path, or "" when that
// is not a fileID.
func (f UnreadableFile) FileID() string {
	id := path.Base(strings.TrimRight(f.Path, "/"))
	if !validFileID(id) {
		return ""
	}
	return strings.ToLower(id)
}

// UnreadableList is what a backup records of its unreadable files.
type UnreadableList struct {
	// Count is how many files the iPhone could not read; Files lists
	// them, or the first of them when there were very many.
	Count int              `json:"count"`
	Files []UnreadableFile `json:"files"`
}

// EncodeUnreadable is the list's content on disk.
func EncodeUnreadable(l UnreadableList) ([]byte, error) {
	return json.MarshalIndent(l, "", "  ")
}

// readUnreadable reads the backup's list of unreadable files, if it has
// one, into the set of their fileIDs. A list that cannot be read excuses
// nothing: the backup is then checked whole.
func (v *verifier) readUnreadable() {
	f, err := v.root.Open(UnreadableName)
	if err != nil {
		return
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxUnreadableSize+1))
	var l UnreadableList
	if err == nil && len(b) <= maxUnreadableSize {
		err = json.Unmarshal(b, &l)
	}
	if err != nil || len(b) > maxUnreadableSize {
		v.rep.NotChecked = append(v.rep.NotChecked, UnreadableName+" (it cannot be read, so no file is excused)")
		return
	}
	v.unreadable = map[string]bool{}
	for _, u := range l.Files {
		if id := u.FileID(); id != "" {
			v.unreadable[id] = true
		}
	}
	v.rep.Unreadable = max(l.Count, len(v.unreadable))
}

// excused reports whether fileID is one the iPhone could not read, so its
// absence or size is no problem of the backup's; it counts those it met.
func (v *verifier) excused(fileID string) bool {
	if !v.unreadable[strings.ToLower(fileID)] {
		return false
	}
	v.excusedN++
	return true
}

// reportUnreadable says what was left out of the checks.
func (v *verifier) reportUnreadable() {
	if v.excusedN > 0 {
		v.rep.NotChecked = append(v.rep.NotChecked, fmt.Sprintf("%d files the iPhone could not read when it sent them (listed in %s)", v.excusedN, UnreadableName))
	}
}
