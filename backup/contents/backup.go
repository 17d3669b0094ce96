// Package contents reads what is inside a backup on the host: it opens a
// committed backup directory, plain or encrypted (with its password),
// lists its files with their domain, path, size and time, streams a file's
// content (decrypted when needed), and extracts chosen files into a
// directory, where every name from the backup stays inside that
// directory. It never writes to the backup it reads.
package contents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/backupcrypt"
	"github.com/backupd/backupd/proto/wire"
)

// maxManifestPlist bounds Manifest.plist, which lists the installed apps.
const maxManifestPlist = 64 << 20

// ErrPasswordNeeded is returned by Open for an encrypted backup when no
// password was given, so that a caller can ask for one and try again.
var ErrPasswordNeeded = errors.New("contents: the backup is encrypted; its password is needed")

// ErrWrongPassword is wrapped, with cause wrong_backup_password, when the
// password does not unlock the backup's keybag.
var ErrWrongPassword = backupcrypt.ErrWrongPassword

// Options say how to open a backup.
type Options struct {
	// Password opens an encrypted backup; ignored for a plain one. Open
	// does not keep it.
	Password []byte
	// TempDir receives the decrypted Manifest.db of an encrypted backup
	// (a private file, removed by Close); "" means os.TempDir().
	TempDir string
	// Status, if set, hears what Open is doing when it takes long:
	// deriving the key from the password takes seconds on a real
	// keybag.
	Status func(msg string)
}

// Backup is an open backup. Close it to remove the decrypted Manifest.db.
type Backup struct {
	dir       string
	root      *os.Root
	db        *ManifestDB
	keys      *backupcrypt.ClassKeys // nil for a plain backup
	tmp       string                 // decrypted Manifest.db, removed by Close
	encrypted bool
	version   string // Lockdown.ProductVersion

	mu sync.Mutex
	// dirs are the backup's xx/ directories opened so far, by "xx/": one
	// for each two-hex-digit prefix of a fileID met (backupPath), 484 at
	// most. They stay open until Close, as the root does.
	dirs map[string]*os.Root
}

// manifestPlist is what Open reads from Manifest.plist.
type manifestPlist struct {
	IsEncrypted  bool
	BackupKeyBag []byte
	ManifestKey  []byte
	Lockdown     struct{ ProductVersion string }
}

// Open opens the backup in dir, the directory holding Manifest.plist and
// Manifest.db. Everything is read through an os.Root on dir, so a symbolic
// link in the backup cannot point the reader outside it. A wrong password
// is an error wrapping ErrWrongPassword with cause wrong_backup_password,
// found before anything is read beyond Manifest.plist.
func Open(ctx context.Context, dir string, opt Options) (_ *Backup, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("contents: open backup: %w", err)
	}
	b := &Backup{dir: abs, root: root, dirs: map[string]*os.Root{}}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	mp, err := b.readManifestPlist()
	if err != nil {
		return nil, err
	}
	b.encrypted, b.version = mp.IsEncrypted, mp.Lockdown.ProductVersion
	dbPath := filepath.Join(abs, "Manifest.db")
	if fi, err := root.Lstat("Manifest.db"); err != nil {
		return nil, fmt.Errorf("contents: %s: %w", dbPath, err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("contents: %s is not a regular file", dbPath)
	}
	if b.encrypted {
		if dbPath, err = b.unlock(ctx, mp, opt); err != nil {
			return nil, err
		}
	}
	if b.db, err = OpenManifestDB(ctx, dbPath); err != nil {
		return nil, err
	}
	return b, nil
}

// Close releases the backup and removes the decrypted Manifest.db.
func (b *Backup) Close() error {
	var errs []error
	if b.db != nil {
		errs = append(errs, b.db.Close())
	}
	if b.tmp != "" {
		errs = append(errs, os.Remove(b.tmp))
	}
	b.mu.Lock()
	for _, d := range b.dirs {
		errs = append(errs, d.Close())
	}
	clear(b.dirs)
	b.mu.Unlock()
	errs = append(errs, b.root.Close())
	return errors.Join(errs...)
}

// Dir is the backup's directory.
func (b *Backup) Dir() string { return b.dir }

// Encrypted reports whether the backup is encrypted.
func (b *Backup) Encrypted() bool { return b.encrypted }

// ProductVersion is the iOS version the backup was made from.
func (b *Backup) ProductVersion() string { return b.version }

func (b *Backup) readManifestPlist() (manifestPlist, error) {
	var mp manifestPlist
	f, err := b.root.Open("Manifest.plist")
	if err != nil {
		return mp, fmt.Errorf("contents: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestPlist+1))
	if err != nil {
		return mp, fmt.Errorf("contents: read Manifest.plist: %w", err)
	}
	if len(data) > maxManifestPlist {
		return mp, fmt.Errorf("contents: Manifest.plist is larger than %d MiB", maxManifestPlist>>20)
	}
	if err := wire.Decode(data, &mp); err != nil {
		return mp, fmt.Errorf("contents: Manifest.plist: %w", err)
	}
	return mp, nil
}

// unlock opens the keybag with the password and decrypts Manifest.db into
// a private temporary file, whose path it returns.
func (b *Backup) unlock(ctx context.Context, mp manifestPlist, opt Options) (string, error) {
	if len(opt.Password) == 0 {
		return "", ErrPasswordNeeded
	}
	kb, err := backupcrypt.ParseKeybag(mp.BackupKeyBag)
	if err != nil {
		return "", fmt.Errorf("contents: Manifest.plist BackupKeyBag: %w", err)
	}
	if opt.Status != nil && kb.SlowDerivation() {
		opt.Status(fmt.Sprintf("deriving the key from the password (%d rounds of PBKDF2); this takes a few seconds", kb.DPIC))
	}
	if b.keys, err = kb.Unlock(ctx, opt.Password); err != nil {
		if errors.Is(err, backupcrypt.ErrWrongPassword) {
			return "", cause.New(cause.WrongBackupPassword, fmt.Errorf("contents: %s: %w", b.dir, err))
		}
		return "", fmt.Errorf("contents: %w", err)
	}
	key, err := b.keys.Unwrap(mp.ManifestKey)
	if err != nil {
		return "", fmt.Errorf("contents: Manifest.plist ManifestKey: %w", err)
	}
	defer clear(key)
	return b.decryptManifest(key, opt.TempDir)
}

func (b *Backup) decryptManifest(key []byte, tempDir string) (_ string, err error) {
	src, err := b.root.Open("Manifest.db")
	if err != nil {
		return "", fmt.Errorf("contents: %w", err)
	}
	defer src.Close()
	dec, err := backupcrypt.NewDecrypter(src, key, -1)
	if err != nil {
		return "", err
	}
	// CreateTemp makes the file 0600: the decrypted list of files is as
	// private as the backup.
	tmp, err := os.CreateTemp(tempDir, "backupd-manifest-*.db")
	if err != nil {
		return "", fmt.Errorf("contents: temporary Manifest.db: %w", err)
	}
	b.tmp = tmp.Name()
	if _, err := io.Copy(tmp, dec); err != nil {
		tmp.Close()
		return "", fmt.Errorf("contents: decrypt Manifest.db: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("contents: temporary Manifest.db: %w", err)
	}
	return b.tmp, nil
}
