package repo

// WithTestHooks returns opts with the hooks tests use: afterStep runs after
// every step of a commit (and of an abort), and an error from it stops
// there as a crash would; noExchange forces the two-rename commit; linkErr,
// when set, is what every hard link attempt fails with.
func WithTestHooks(opts Options, afterStep func(step string) error, noExchange bool, linkErr error) Options {
	opts.test = testHooks{afterStep: afterStep, noExchange: noExchange, linkErr: linkErr}
	return opts
}

// ErrInjected, wrapped by an afterStep error, makes the step fail as if a
// system call had failed, rather than stop there as a crash.
var ErrInjected = errInjected

// JournalPath is where a commit's journal lives, for tests that damage it.
func (r *Repo) JournalPath(udid string) string { return r.journalPath(udid) }

// StagingRoot is .backupd/staging.
func (r *Repo) StagingRoot() string { return r.stagingRoot() }

// TrashRoot is .backupd/trash.
func (r *Repo) TrashRoot() string { return r.trashRoot() }
