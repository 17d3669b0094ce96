package contents

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/backupd/backupd/proto/backupcrypt"
)

// ErrDamaged is wrapped when a file of the backup is not what its record
// says: missing, of the wrong length, truncated, or with ciphertext that
// does not decrypt.
var ErrDamaged = errors.New("damaged")

// ErrMissing is wrapped, with ErrDamaged, when a listed file is not in the
// backup at all.
var ErrMissing = errors.New("missing from the backup")

// FileError is a failure with one file of the backup; it names the file.
type FileError struct {
	Name   string // Domain/relativePath
	FileID string
	Err    error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("%s (%s): %v", e.Name, e.FileID, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

func fileErr(e Entry, err error) error {
	return &FileError{Name: e.Name(), FileID: e.FileID, Err: err}
}

// backupPath is where a file's content lives in the backup: xx/<fileID>.
// A fileID is 40 hex digits; checking it keeps a hostile Manifest.db from
// naming anything else.
func backupPath(id string) (string, error) {
	if len(id) != 40 {
		return "", fmt.Errorf("invalid fileID %q", id)
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", fmt.Errorf("invalid fileID %q", id)
		}
	}
	return path.Join(id[:2], id), nil
}

// open opens rel, "xx/<fileID>", through the backup's handle of xx,
// opened once: through the root each file's open would open and close xx
// again.
func (b *Backup) open(rel string) (*os.File, error) {
	dir, name := path.Split(rel)
	b.mu.Lock()
	d := b.dirs[dir]
	if d == nil {
		var err error
		if d, err = b.root.OpenRoot(dir); err != nil {
			b.mu.Unlock()
			return nil, err
		}
		b.dirs[dir] = d
	}
	b.mu.Unlock()
	return d.Open(name)
}

// stored opens a file's content as stored and checks its length against
// the record: equal to Size in a plain backup, Size padded to whole AES
// blocks in an encrypted one.
func (b *Backup) stored(e Entry) (*os.File, int64, error) {
	if e.Kind != KindFile {
		return nil, 0, fmt.Errorf("is a %s, not a file", e.Kind)
	}
	if e.Problem != "" {
		return nil, 0, fmt.Errorf("%w: its record does not decode: %s", ErrDamaged, e.Problem)
	}
	rel, err := backupPath(e.FileID)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	f, err := b.open(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %w", ErrDamaged, ErrMissing)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	want := e.Size
	if b.encrypted {
		want = backupcrypt.EncryptedSize(e.Size)
	}
	switch {
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("%w: not a regular file in the backup", ErrDamaged)
	case fi.Size() < want:
		err = fmt.Errorf("%w: truncated: %d bytes stored, %d expected", ErrDamaged, fi.Size(), want)
	case fi.Size() > want:
		err = fmt.Errorf("%w: %d bytes stored, %d expected", ErrDamaged, fi.Size(), want)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// fileKey unwraps a file's own key.
func (b *Backup) fileKey(e Entry) ([]byte, error) {
	if e.storedKey == nil {
		return nil, fmt.Errorf("%w: its record has no EncryptionKey", ErrDamaged)
	}
	key, err := b.keys.Unwrap(e.storedKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return key, nil
}

// Open returns a stream of a file's content, decrypted in an encrypted
// backup. Reading it fails, naming the file, when the content turns out
// shorter or longer than its record says or does not decrypt.
func (b *Backup) Open(e Entry) (io.ReadCloser, error) {
	f, _, err := b.stored(e)
	if err != nil {
		return nil, fileErr(e, err)
	}
	if !b.encrypted {
		return &checkedReader{f: f, e: e, left: e.Size}, nil
	}
	key, err := b.fileKey(e)
	if err != nil {
		f.Close()
		return nil, fileErr(e, err)
	}
	defer clear(key)
	dec, err := backupcrypt.NewDecrypter(f, key, e.Size)
	if err != nil {
		f.Close()
		return nil, fileErr(e, err)
	}
	return &decryptedReader{dec: dec, f: f, e: e}, nil
}

// Check verifies a file without reading all of it: it is present with
// the length its record gives, and in an encrypted backup its last
// blocks decrypt to valid padding with the plain length recorded.
func (b *Backup) Check(e Entry) error {
	f, size, err := b.stored(e)
	if err != nil {
		return fileErr(e, err)
	}
	defer f.Close()
	if !b.encrypted {
		return nil
	}
	key, err := b.fileKey(e)
	if err != nil {
		return fileErr(e, err)
	}
	defer clear(key)
	plain, err := backupcrypt.PlainSize(f, size, key)
	if err != nil {
		return fileErr(e, fmt.Errorf("%w: %w", ErrDamaged, err))
	}
	if plain != e.Size {
		return fileErr(e, fmt.Errorf("%w: decrypts to %d bytes, %d recorded", ErrDamaged, plain, e.Size))
	}
	return nil
}

// checkedReader reads a plain file and fails if it turns out of another
// length than its record (it changed since it was checked).
type checkedReader struct {
	f    *os.File
	e    Entry
	left int64
}

func (r *checkedReader) Read(p []byte) (int, error) {
	if int64(len(p)) > r.left+1 {
		p = p[:r.left+1]
	}
	n, err := r.f.Read(p)
	r.left -= int64(n)
	switch {
	case r.left < 0:
		return n, fileErr(r.e, fmt.Errorf("%w: longer than the %d bytes recorded", ErrDamaged, r.e.Size))
	case err == io.EOF && r.left > 0:
		return n, fileErr(r.e, fmt.Errorf("%w: truncated: %d bytes short", ErrDamaged, r.left))
	case err != nil && err != io.EOF:
		return n, fileErr(r.e, err)
	}
	return n, err
}

func (r *checkedReader) Close() error { return r.f.Close() }

type decryptedReader struct {
	dec *backupcrypt.Decrypter
	f   *os.File
	e   Entry
}

func (r *decryptedReader) Read(p []byte) (int, error) {
	n, err := r.dec.Read(p)
	if err != nil && err != io.EOF {
		if errors.Is(err, backupcrypt.ErrDamaged) {
			err = fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return n, fileErr(r.e, err)
	}
	return n, err
}

func (r *decryptedReader) Close() error { return r.f.Close() }
