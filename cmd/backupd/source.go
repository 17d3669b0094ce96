package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/term"

	"github.com/backupd/backupd/backup/contents"
	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/offline"
)

// What files and extract share: which backup they read, opened pinned
// and read-only, with its password when it is encrypted.

// sourceFlags are the flags that choose a backup and its files.
type sourceFlags struct {
	from, passwordFile, domain string
	photos, asJSON             bool
}

func (s *sourceFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&s.from, "from", repo.LatestName, `which backup: "latest", a version's name (backupd versions lists them) or an RFC 3339 date or time (the newest backup at or before it)`)
	fs.StringVar(&s.passwordFile, "password-file", "", "an encrypted backup's password, from the first line of this file (- for stdin) instead of asking")
	fs.StringVar(&s.domain, "domain", "", "only this domain (CameraRollDomain, HomeDomain, AppDomain-<bundle id>, ...)")
	fs.BoolVar(&s.photos, "photos", false, "only the camera roll's photos and videos")
	fs.BoolVar(&s.asJSON, "json", false, "print JSON")
}

// filter is the files chosen by the flags and the GLOBs.
func (s *sourceFlags) filter(globs []string) (contents.Filter, error) {
	f := contents.Filter{Domain: s.domain, Globs: globs, Photos: s.photos}
	if err := f.Validate(); err != nil {
		return f, fail(exitUsage, "%w", err)
	}
	return f, nil
}

// source is an open, pinned backup. Close it when done.
type source struct {
	udid    string
	id      string // the version's name, which --from takes back
	version repo.Version
	r       *repo.Repo
	pin     *repo.Pin
	b       *contents.Backup
}

func (s *source) Close() {
	if s.b != nil {
		s.b.Close()
	}
	if s.pin != nil {
		s.pin.Release()
	}
	if s.r != nil {
		s.r.Close()
	}
}

// describe names the backup for a person: "the backup of 00008030… of
// 2026-01-02 10:00 (latest)".
func (s *source) describe() string {
	which := "version " + s.id
	if s.version.Latest {
		which = "latest"
	}
	return fmt.Sprintf("the backup of %s of %s (%s)", shortUDID(s.udid), s.version.Time.Local().Format("2006-01-02 15:04"), which)
}

// openSource finds the device (pos[0] when it is a UDID, else the only
// device with a backup), pins the backup --from names and opens it,
// asking for its password when it is encrypted. It returns the source and
// the positional arguments left (the GLOBs).
func openSource(ctx context.Context, a *app, sf sourceFlags, pos []string) (*source, []string, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, nil, err
	}
	udid, pos, err := pickBackupDevice(cfg.BackupDir, pos)
	if err != nil {
		return nil, nil, err
	}
	r, err := repo.Open(cfg.BackupDir, repo.Options{})
	if err != nil {
		return nil, nil, fail(exitError, "%w", err)
	}
	s := &source{udid: udid, r: r}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if s.pin, err = r.Pin(udid, sf.from); err != nil {
		return nil, nil, pinError(udid, sf.from, err)
	}
	if why := s.pin.Unlocked(); why != nil {
		fmt.Fprintf(a.stderr, "backupd: warning: reading without a lock, so a backup or retention by the service could replace or remove this backup meanwhile (%v)\n", why)
	}
	s.version, s.id = s.pin.Version(), s.pin.ID()
	if s.b, err = openPinned(ctx, a, s, sf.passwordFile); err != nil {
		return nil, nil, err
	}
	ok = true
	return s, pos, nil
}

// openPinned opens the pinned backup, with the password when it is
// encrypted.
func openPinned(ctx context.Context, a *app, s *source, passwordFile string) (*contents.Backup, error) {
	b, err := contents.Open(ctx, s.pin.Path(), contents.Options{})
	if !errors.Is(err, contents.ErrPasswordNeeded) {
		if err != nil {
			return nil, fail(exitError, "%w", err)
		}
		return b, nil
	}
	src := passwordSource{file: passwordFile, stdin: os.Stdin, tty: term.IsTerminal(int(os.Stdin.Fd())),
		prompt: func(string) (string, error) {
			return terminalPrompt(a.stderr)("Password of " + s.describe() + ": ")
		}}
	pw, err := src.readContext(ctx, false, s.describe())
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fail(exitError, "%w", err)
	}
	password := []byte(pw)
	defer clear(password)
	b, err = contents.Open(ctx, s.pin.Path(), contents.Options{Password: password, Status: func(msg string) {
		fmt.Fprintf(a.stderr, "%s…\n", msg)
	}})
	switch {
	case cause.Of(err) == cause.WrongBackupPassword:
		return nil, wrongPassword(s)
	case err != nil:
		return nil, fail(exitError, "%w", err)
	}
	return b, nil
}

// wrongPasswordFix is wrong_backup_password's fix for a backup that is
// already kept: its password is the one it was made with.
const wrongPasswordFix = "give the password this backup was made with: the backup password the iPhone had when it made this backup. A password changed on the iPhone later does not change backups already kept, so an older version may need an older password."

// errWrongPassword is a wrong password for a kept backup; JSON output
// reports its cause.
type errWrongPassword struct{ what string }

func (e errWrongPassword) Error() string {
	return fmt.Sprintf("the password does not open %s (%s)\n  Fix: %s", e.what, cause.WrongBackupPassword, wrongPasswordFix)
}

func wrongPassword(s *source) error {
	return &cmdError{code: exitError, err: errWrongPassword{s.describe()}}
}

// pinError says why --from names no backup that can be read now.
func pinError(udid, from string, err error) error {
	switch {
	case errors.Is(err, repo.ErrNoSuchVersion):
		return fail(exitError, "%w\n  backupd versions %s lists the backups kept", err, udid)
	case errors.Is(err, repo.ErrBusy):
		return fail(exitError, "%s: a backup of this iPhone is in progress and will replace the latest backup; wait for it to end (backupd status), or name an older one with --from (backupd versions %s)", shortUDID(udid), udid)
	}
	return fail(exitError, "%w", err)
}

// pickBackupDevice takes the UDID from pos when its first argument is
// one, else the only device with a backup in backupDir.
func pickBackupDevice(backupDir string, pos []string) (string, []string, error) {
	udids, err := offline.BackupUDIDs(backupDir)
	if err != nil {
		return "", nil, fail(exitError, "%w", err)
	}
	if len(pos) > 0 && (looksLikeUDID(pos[0]) || slices.Contains(udids, pos[0])) {
		if !slices.Contains(udids, pos[0]) {
			return "", nil, fail(exitError, "there is no backup of %s in %s", pos[0], backupDir)
		}
		return pos[0], pos[1:], nil
	}
	switch len(udids) {
	case 0:
		return "", nil, fail(exitError, "there are no backups in %s", backupDir)
	case 1:
		return udids[0], pos, nil
	}
	return "", nil, fail(exitUsage, "%d iPhones have backups in %s; name one: %s", len(udids), backupDir, strings.Join(udids, ", "))
}

// looksLikeUDID: 40 hex digits, or 8 and 16 with a dash (newer iPhones).
func looksLikeUDID(s string) bool {
	isHex := func(s string) bool {
		for _, c := range []byte(s) {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		return true
	}
	switch len(s) {
	case 40:
		return isHex(s)
	case 25:
		return s[8] == '-' && isHex(s[:8]) && isHex(s[9:])
	}
	return false
}

// errorJSON is what --json prints when a command fails before its work:
// the error and, when it has one, its cause and fix.
type errorJSON struct {
	Error string     `json:"error"`
	Cause cause.Code `json:"cause,omitempty"`
	Fix   string     `json:"fix,omitempty"`
}

// failJSON prints err as JSON on w when asJSON and returns it.
func failJSON(w io.Writer, asJSON bool, err error) error {
	var ce *cmdError
	if !asJSON || err == nil || errors.As(err, &ce) && ce.err == nil {
		return err // nothing, or said already
	}
	var wp errWrongPassword
	out := errorJSON{Error: err.Error()}
	if errors.As(err, &wp) {
		out = errorJSON{Error: "the password does not open " + wp.what, Cause: cause.WrongBackupPassword, Fix: wrongPasswordFix}
	}
	writeJSON(w, out)
	return err
}
