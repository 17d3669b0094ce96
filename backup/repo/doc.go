// Package repo owns backupd's backup directory on disk: where the latest
// backup of each iPhone lives, where a backup in progress is staged, where
// older backups are kept, and how a finished backup replaces the latest one
// so that a crash at any instant leaves either the old or the new backup as
// the latest, never a mix and never none.
//
// # Layout
//
//	<backup_dir>/<UDID>/                              latest completed backup, Apple layout
//	<backup_dir>/.backupd/lock                        held while a Repo changes anything
//	<backup_dir>/.backupd/staging/<UDID>/root/<UDID>/ the backup in progress (Staging.Dir() is .../root)
//	<backup_dir>/.backupd/staging/<UDID>/commit.json  the commit journal, while a commit runs
//	<backup_dir>/.backupd/versions/<UDID>/<time>/     older completed backups
//	<backup_dir>/.backupd/trash/                      directories on their way out
//
// <time> is the UTC time the backup was completed, "2006-01-02T15-04-05.000Z"
// (no colons, for Windows), with "-2", "-3"... appended in the rare case of
// two in the same millisecond. The journal sits beside the device's root, not
// in it, so nothing the device names can forge one.
//
// # Begin
//
// Begin clones the latest backup into staging: per file a reflink (FICLONE
// on Linux), else a hard link, else a streamed copy. A clone shares inodes
// with the latest backup, so nothing here or in the engine may open a cloned
// file for writing: new content is written to a new file and renamed over
// the old name. This package only ever opens files it did not create
// read-only.
//
// # Commit
//
// Commit runs these steps; the names are the ones a failpoint sees.
//
//  1. verified: the staged tree passes Verify. Files the backup lists as
//     ones the iPhone could not read (UnreadableName) are left out of its
//     presence and size checks: a backup the phone called successful is
//     kept without them.
//  2. synced: every file not shared with an older backup, and every
//     directory, is fsynced; the tree's root gets the commit time as its
//     modification time (it names the version when the tree is retired).
//  3. journaled: commit.json is written to a temporary name, fsynced and
//     renamed into place. This is the commit point: before it the old
//     backup wins, after it the new one does.
//  4. swapped: on Linux (renameat2 RENAME_EXCHANGE) and macOS (renamex_np
//     RENAME_SWAP) the staged tree and the latest trade places in one atomic
//     step, so <backup_dir>/<UDID> always exists. Elsewhere, or where the
//     file system refuses, two renames: retired (latest → versions) then
//     installed (staged → latest); between them there is no latest until
//     recovery finishes the commit, which the journal guarantees.
//  5. retired: after a swap, the previous latest (now in staging) moves to
//     versions/<UDID>/<time> (or to trash when no versions are kept).
//  6. cleaned: the staging directory, journal included, moves to trash in
//     one rename and is deleted; purged: a previous latest that is not
//     kept is deleted.
//  7. pruned: versions beyond KeepLast move to trash and are deleted.
//
// Steps 6 and 7 come after the backup is committed: a failure in them is
// logged, not returned, and the next Recover or commit finishes the job.
//
// Every rename is followed by an fsync of the directories it touched.
//
// # Recover
//
// The journal records where the previous latest goes and, where the
// platform has them, the device and inode numbers of the two trees, because
// after an exchange both names exist either way and only identity tells
// whether the swap happened. Recover (and Begin, for its own UDID) looks at
// each staging directory:
//
//   - no journal: the run never reached its commit point; the staging is
//     discarded and the latest is untouched.
//   - a journal: the commit is driven to its end from whatever state the
//     disk is in (the same code Commit runs): exchange or rename not done
//     yet → done now; swapped but not retired → retired; retired but not
//     installed → installed; then the staging and its journal go.
//     States that no crash can produce (say, an identity that matches
//     neither tree) are reported and nothing is touched; if both the
//     latest and the staged tree are gone but the retired one is there, it
//     is put back as the latest.
//
// Recover also empties trash and applies retention, so a crash between
// retiring and pruning costs nothing but time.
//
// Only one Repo may change a backup directory at a time: Begin and Recover
// take an exclusive lock on .backupd/lock (flock, LockFileEx) that Close
// releases. Reading (Latest, Versions, Verify) needs no lock.
package repo
