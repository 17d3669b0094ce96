package backup

import (
	"fmt"

	"github.com/backupd/backupd/backup/repo"
)

// Files the iPhone could not read.
//
// A real iPhone can send a file as an error block alone (0x0B
// "Input/output error": it could not read its own file) and still end
// the backup with ErrorCode 0. The file then stays in the backup as what
// arrived of it — nothing — as in libimobiledevice, and the device's
// later MoveItems moves it into place. The policy: the phone's word
// decides. A backup it calls successful is kept, with the list of the
// files it could not read, written into the backup for Verify
// (repo.UnreadableName) and reported in Result for the run's record. A
// backup it ends with ErrorCode 104 ("multiple errors uploading files",
// the screen locked, say) failed, with cause device_upload_errors.

// UnreadableFile is one file the iPhone listed in its backup but could
// not read when it sent it.
type UnreadableFile = repo.UnreadableFile

// maxUnreadableListed bounds the files a run lists by name; past it only
// the count grows. A phone that cannot read thousands of files has one
// problem, and a few names show it.
const maxUnreadableListed = 1000

// unreadableFiles is what a session gathered.
type unreadableFiles struct {
	count int
	files []UnreadableFile
}

// couldNotRead records a file that came as an error block alone.
func (s *session) couldNotRead(name, path, message string) {
	s.log.Warn("mobilebackup2: the iPhone could not read a file", "name", name, "path", path, "message", message)
	s.unreadable.count++
	if len(s.unreadable.files) < maxUnreadableListed {
		s.unreadable.files = append(s.unreadable.files, UnreadableFile{Name: name, Path: path, Message: message})
	}
}

// recordUnreadable writes the list of files the iPhone could not read
// into the staged backup of udid, or removes a list the staging inherited
// from the last backup (or the device put there) when there are none: the
// list speaks of this backup only, since a file the phone could read
// this time is whole again.
func recordUnreadable(fs *stagingFS, udid string, u unreadableFiles) error {
	name := udid + "/" + repo.UnreadableName
	if u.count == 0 {
		if err := fs.removeAll(name); err != nil {
			return fmt.Errorf("staging: remove %s: %w", repo.UnreadableName, err)
		}
		return nil
	}
	b, err := repo.EncodeUnreadable(repo.UnreadableList{Count: u.count, Files: u.files})
	if err != nil {
		return err
	}
	if err := fs.removeAll(name); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	if err := fs.writeFile(name, b); err != nil {
		return fmt.Errorf("staging: write %s: %w", repo.UnreadableName, err)
	}
	return nil
}
