package repo

// JournalPath is where a commit's journal lives, for tests that damage it.
func (r *Repo) JournalPath(udid string) string { return r.journalPath(udid) }

// StagingRoot is .backupd/staging.
func (r *Repo) StagingRoot() string { return r.stagingRoot() }

// TrashRoot is .backupd/trash.
func (r *Repo) TrashRoot() string { return r.trashRoot() }
