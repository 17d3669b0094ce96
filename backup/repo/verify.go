package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/backupd/backupd/backup/contents"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/wire"
)

// VerifyReport says what Verify checked in a backup and what it could not.
type VerifyReport struct {
	Dir       string
	Encrypted bool // Manifest.plist IsEncrypted
	// ManifestRead is true when Manifest.db opened as SQLite and its list
	// of files was read.
	ManifestRead bool
	// FilesListed is the number of regular files Manifest.db lists;
	// FilesPresent how many of them are in the backup; SizesChecked how
	// many of those had their size compared with the one Manifest.db
	// records.
	FilesListed, FilesPresent, SizesChecked int
	// FilesOnDisk is the number of files found by listing the xx/
	// directories, counted when Manifest.db could not be read (an
	// encrypted backup): all that can be said about them without the
	// password.
	FilesOnDisk int
	// Unreadable is how many files the backup records the iPhone could
	// not read when it sent them (see UnreadableName); they are left out
	// of the checks of presence and size.
	Unreadable int
	// Checked and NotChecked are sentences for a person.
	Checked, NotChecked []string
	// Problems are why the backup does not verify; empty when it does.
	Problems []string
}

func (v VerifyReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", v.Dir)
	if len(v.Problems) == 0 {
		b.WriteString("verifies")
	} else {
		fmt.Fprintf(&b, "does not verify: %s", strings.Join(v.Problems, "; "))
	}
	if len(v.Checked) > 0 {
		fmt.Fprintf(&b, "; checked: %s", strings.Join(v.Checked, ", "))
	}
	if len(v.NotChecked) > 0 {
		fmt.Fprintf(&b, "; not checked: %s", strings.Join(v.NotChecked, ", "))
	}
	return b.String()
}

// Limits on what Verify reads into memory.
const (
	// maxPlistSize bounds Info.plist and Manifest.plist, which carry the
	// installed apps (with icons, in Info.plist) and grow to megabytes.
	maxPlistSize = 64 << 20
	// maxProblemsListed bounds the missing files named in the error.
	maxProblemsListed = 5
	// DefaultVerifyTimeout bounds a Verify. Checking a real backup of a
	// million files takes about a minute (a stat each); a Manifest.db that
	// keeps verify busy longer is hostile, and verify at commit holds
	// the device's backup slot.
	DefaultVerifyTimeout = 15 * time.Minute
	// sqliteMagic starts every SQLite database file.
	sqliteMagic = "SQLite format 3\x00"
)

// Verify checks the backup in dir (the directory holding Status.plist):
// Status.plist says SnapshotState "finished"; Info.plist, Manifest.plist
// and Status.plist parse; Manifest.db opens read-only and every regular
// file it lists is present as <fileID[:2]>/<fileID>, with the size it
// records. An encrypted backup's Manifest.db is encrypted too: then the
// report says so and counts the files present instead of failing.
//
// A backup that does not verify gives an error with cause
// cause.VerifyFailed naming the problems; the report lists all of them.
// Errors reading the disk itself (permissions, I/O) are returned as they
// are. Verify never writes: SQLite is opened immutable, so not even a
// journal or lock file appears beside Manifest.db.
func (r *Repo) Verify(ctx context.Context, dir string) (VerifyReport, error) {
	return r.VerifyEncrypted(ctx, dir, nil)
}

// VerifyEncrypted is Verify with the backup password: an encrypted
// backup is then checked as deeply as a plain one. Its Manifest.db is
// decrypted (into a private temporary file, removed afterwards) and
// opened, and every file it lists must be present and decrypt, from its
// last blocks, to the size it records. A wrong password is an error with
// cause wrong_backup_password. A nil password is Verify.
func (r *Repo) VerifyEncrypted(ctx context.Context, dir string, password []byte) (VerifyReport, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return VerifyReport{Dir: dir}, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, r.opts.VerifyTimeout, errVerifyDeadline)
	defer cancel()
	v := &verifier{ctx: ctx, rep: VerifyReport{Dir: abs}, password: password}
	err = v.run(abs)
	if err != nil && context.Cause(ctx) == errVerifyDeadline {
		v.problem("verify did not finish within %v (a Manifest.db that takes this long is not one a phone writes)", r.opts.VerifyTimeout)
		err = nil
	}
	if err != nil {
		if cause.Of(err) == cause.WrongBackupPassword {
			return v.rep, err
		}
		return v.rep, classify(fmt.Errorf("repo: verify %s: %w", abs, err))
	}
	if len(v.rep.Problems) > 0 {
		return v.rep, cause.New(cause.VerifyFailed, fmt.Errorf("backup in %s does not verify: %s", abs, strings.Join(v.rep.Problems, "; ")))
	}
	return v.rep, nil
}

// errVerifyDeadline is the cause of a verify's context when its time is
// up.
var errVerifyDeadline = errors.New("verify deadline")

type verifier struct {
	ctx      context.Context
	rep      VerifyReport
	root     *os.Root
	password []byte
	// dirs are the xx/ directories opened so far, so that each file
	// costs one fstatat rather than a walk of its path.
	dirs map[string]*os.Root
	// unreadable holds the fileIDs of the files the iPhone could not
	// read; excusedN counts those met in Manifest.db.
	unreadable map[string]bool
	excusedN   int
}

func (v *verifier) problem(format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, fmt.Sprintf(format, args...))
}

func (v *verifier) run(dir string) error {
	fi, err := os.Lstat(dir)
	switch {
	case isNotExist(err):
		v.problem("the backup directory %s does not exist", dir)
		return nil
	case err != nil:
		return err
	case !fi.IsDir():
		v.problem("%s is not a directory", dir)
		return nil
	}
	// Reading through an os.Root keeps a symbolic link in the backup from
	// pointing Verify at a file outside it.
	v.root, err = os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer v.root.Close()

	var status struct {
		SnapshotState string `plist:"SnapshotState"`
	}
	if ok, err := v.plist("Status.plist", &status); err != nil {
		return err
	} else if ok {
		if status.SnapshotState != "finished" {
			v.problem("Status.plist says SnapshotState %q, not \"finished\": the device did not finish this backup", status.SnapshotState)
		} else {
			v.rep.Checked = append(v.rep.Checked, "Status.plist says SnapshotState finished")
		}
	}
	var info map[string]any
	if _, err := v.plist("Info.plist", &info); err != nil {
		return err
	}
	var manifest struct {
		IsEncrypted bool `plist:"IsEncrypted"`
	}
	if _, err := v.plist("Manifest.plist", &manifest); err != nil {
		return err
	}
	v.rep.Encrypted = manifest.IsEncrypted
	v.readUnreadable()
	defer v.reportUnreadable()
	return v.manifestDB(dir)
}

// plist reads and decodes one of the backup's plists; a missing or
// unparsable one is a problem, not an error.
func (v *verifier) plist(name string, out any) (bool, error) {
	f, err := v.root.Open(name)
	if isNotExist(err) {
		v.problem("%s is missing", name)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPlistSize+1))
	if err != nil {
		// A directory where the file should be reads as an error too.
		v.problem("%s cannot be read: %v", name, err)
		return false, nil
	}
	if len(b) > maxPlistSize {
		// Only Info.plist (app icons) grows this large. Refusing the
		// backup for it would keep every later one from committing, and
		// decoding it could exhaust a small machine's memory.
		if name == "Status.plist" {
			v.problem("%s is larger than %d MiB", name, maxPlistSize>>20)
		} else {
			v.rep.NotChecked = append(v.rep.NotChecked, fmt.Sprintf("whether %s parses (it is larger than %d MiB)", name, maxPlistSize>>20))
		}
		return false, nil
	}
	if err := wire.Decode(b, out); err != nil {
		v.problem("%s does not parse as a plist: %v", name, err)
		return false, nil
	}
	v.rep.Checked = append(v.rep.Checked, name+" parses")
	return true, nil
}

// manifestDB checks Manifest.db and the files it lists.
func (v *verifier) manifestDB(dir string) error {
	dbPath := filepath.Join(dir, "Manifest.db")
	fi, err := os.Lstat(dbPath)
	switch {
	case isNotExist(err):
		v.problem("Manifest.db is missing")
		return nil
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		v.problem("Manifest.db is not a regular file")
		return nil
	}
	isSQLite, err := hasSQLiteMagic(dbPath)
	if err != nil {
		return err
	}
	if !isSQLite {
		if v.rep.Encrypted && len(v.password) > 0 {
			return v.decryptedListing(dir)
		}
		if v.rep.Encrypted {
			return v.encryptedListing()
		}
		v.problem("Manifest.db is not an SQLite database")
		return nil
	}
	err = v.listedFiles(dbPath)
	var de *dbError
	if errors.As(err, &de) && v.ctx.Err() == nil {
		// SQLite's own complaint: a damaged or foreign database.
		if v.rep.Encrypted {
			return v.encryptedListing()
		}
		v.problem("Manifest.db cannot be read: %v", de.err)
		return nil
	}
	return err
}

// dbError marks an error from SQLite, as opposed to one from the file
// system or the context: the first is a problem with the backup, the
// others are not.
type dbError struct{ err error }

func (e *dbError) Error() string { return e.err.Error() }
func (e *dbError) Unwrap() error { return e.err }

func hasSQLiteMagic(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var magic [len(sqliteMagic)]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		return false, err
	}
	return string(magic[:]) == sqliteMagic, nil
}

// fileRel is where a backup keeps file id, for messages; built only for
// the files a message names, as the verify reads every row.
func fileRel(id string) string { return id[:2] + "/" + id }

// listedFiles reads Manifest.db's regular files and checks each one. The
// database is opened through contents.OpenManifestDB, which refuses a
// hostile schema and bounds what each row and the whole listing cost.
func (v *verifier) listedFiles(dbPath string) error {
	db, err := contents.OpenManifestDB(v.ctx, dbPath)
	if err != nil {
		return &dbError{err}
	}
	defer db.Close()
	// Per-file problems are tallied, each with a few examples, so that a
	// badly damaged backup of a million files gives a readable error.
	var missing, notRegular, wrongSize, invalidID tally
	checkSizes := !v.rep.Encrypted
	var oversized int
	defer v.closeDirs()
	for row, err := range db.Sizes(v.ctx, `WHERE flags = 1`) {
		if err != nil {
			return &dbError{err}
		}
		id := row.FileID
		if row.Oversized {
			oversized++
		}
		v.rep.FilesListed++
		if v.rep.FilesListed%1024 == 0 {
			if err := v.ctx.Err(); err != nil {
				return err
			}
		}
		if !validFileID(id) {
			invalidID.add(fmt.Sprintf("%q", id))
			continue
		}
		fi, err := v.lstat(id)
		switch {
		case isNotExist(err):
			if !v.excused(id) {
				missing.add(fileRel(id))
			}
			continue
		case err != nil:
			return err
		case !fi.Mode().IsRegular():
			notRegular.add(fileRel(id))
			continue
		}
		v.rep.FilesPresent++
		if !checkSizes {
			continue
		}
		if row.SizeKnown {
			v.rep.SizesChecked++
			if row.Size != fi.Size() && !v.excused(id) {
				wrongSize.add(fmt.Sprintf("%s is %d bytes, Manifest.db says %d", fileRel(id), fi.Size(), row.Size))
			}
		}
	}
	v.rep.ManifestRead = true
	if oversized > 0 {
		v.problem("Manifest.db has %d rows with a value over its bound (a record over %d bytes, or a path over 4096): no phone writes those", oversized, contents.MaxRecordSize)
	}
	missing.report(v, fmt.Sprintf("files Manifest.db lists are missing (%d of %d)", missing.n, v.rep.FilesListed))
	notRegular.report(v, fmt.Sprintf("files Manifest.db lists are not regular files (%d)", notRegular.n))
	wrongSize.report(v, fmt.Sprintf("files differ in size from what Manifest.db records (%d)", wrongSize.n))
	invalidID.report(v, fmt.Sprintf("Manifest.db lists invalid fileIDs (%d)", invalidID.n))
	v.rep.Checked = append(v.rep.Checked, fmt.Sprintf("Manifest.db opens and lists %d files, %d of them present", v.rep.FilesListed, v.rep.FilesPresent))
	switch {
	case v.rep.Encrypted:
		v.rep.NotChecked = append(v.rep.NotChecked, "file sizes (the backup is encrypted, so files are padded)")
	case v.rep.SizesChecked < v.rep.FilesPresent:
		v.rep.NotChecked = append(v.rep.NotChecked, fmt.Sprintf("the size of %d files whose Manifest.db record has none", v.rep.FilesPresent-v.rep.SizesChecked))
	default:
		v.rep.Checked = append(v.rep.Checked, "every present file has the size Manifest.db records")
	}
	return nil
}

// lstat describes the file of fileID id, <id[:2]>/<id>.
func (v *verifier) lstat(id string) (fs.FileInfo, error) {
	d, ok := v.dirs[id[:2]]
	if !ok {
		var err error
		if d, err = v.root.OpenRoot(id[:2]); err != nil {
			return nil, err
		}
		if v.dirs == nil {
			v.dirs = map[string]*os.Root{}
		}
		v.dirs[id[:2]] = d
	}
	return d.Lstat(id)
}

func (v *verifier) closeDirs() {
	for _, d := range v.dirs {
		d.Close()
	}
	clear(v.dirs)
}

// tally counts one kind of per-file problem and keeps a few examples.
type tally struct {
	n        int
	examples []string
}

func (t *tally) add(example string) {
	t.n++
	if len(t.examples) < maxProblemsListed {
		t.examples = append(t.examples, example)
	}
}

// report adds one problem, "<what>: example, example, ...", if any.
func (t *tally) report(v *verifier, what string) {
	if t.n == 0 {
		return
	}
	more := ""
	if t.n > len(t.examples) {
		more = ", ..."
	}
	v.problem("%s: %s%s", what, strings.Join(t.examples, ", "), more)
}

// encryptedListing is what can be checked without the backup password:
// the files that are there.
func (v *verifier) encryptedListing() error {
	v.rep.NotChecked = append(v.rep.NotChecked, "the files Manifest.db lists (Manifest.db is encrypted; the backup password would be needed)")
	entries, err := fs.ReadDir(v.root.FS(), ".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || len(e.Name()) != 2 || !isHex(e.Name()) {
			continue
		}
		files, err := fs.ReadDir(v.root.FS(), e.Name())
		if err != nil {
			return err
		}
		for _, f := range files {
			if f.Type().IsRegular() {
				v.rep.FilesOnDisk++
			}
		}
	}
	v.rep.Checked = append(v.rep.Checked, fmt.Sprintf("%d files present in the backup's xx/ directories", v.rep.FilesOnDisk))
	return nil
}

// decryptedListing checks an encrypted backup with its password: every
// file Manifest.db lists is present and decrypts to its recorded size.
func (v *verifier) decryptedListing(dir string) error {
	b, err := contents.Open(v.ctx, dir, contents.Options{Password: v.password})
	if errors.Is(err, contents.ErrWrongPassword) {
		return err
	}
	if err != nil {
		v.problem("the encrypted Manifest.db cannot be opened: %v", err)
		return nil
	}
	defer b.Close()
	var damaged tally
	for e, err := range b.Files(v.ctx, contents.Filter{}) {
		if err != nil {
			return err
		}
		if e.Kind != contents.KindFile {
			continue
		}
		v.rep.FilesListed++
		err := b.Check(e)
		var fe *contents.FileError
		switch {
		case err == nil:
			v.rep.FilesPresent++
			v.rep.SizesChecked++
		case errors.As(err, &fe) && errors.Is(err, contents.ErrDamaged) && v.excused(e.FileID):
		case errors.As(err, &fe) && errors.Is(err, contents.ErrDamaged):
			if !errors.Is(err, contents.ErrMissing) {
				v.rep.FilesPresent++
			}
			damaged.add(err.Error())
		default:
			return err
		}
	}
	v.rep.ManifestRead = true
	damaged.report(v, fmt.Sprintf("files Manifest.db lists are missing or damaged (%d of %d)", damaged.n, v.rep.FilesListed))
	v.rep.Checked = append(v.rep.Checked,
		fmt.Sprintf("Manifest.db decrypts and lists %d files, %d of them present", v.rep.FilesListed, v.rep.FilesPresent),
		"every present file decrypts to the size Manifest.db records")
	return nil
}

// validFileID: a fileID is the SHA-1 of "Domain-relativePath", 40 hex
// digits. Checking it keeps a damaged or hostile Manifest.db from naming
// a path outside the backup.
func validFileID(id string) bool { return len(id) == 40 && isHex(id) }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
