//go:build !unix && !windows

package repo

import (
	"errors"
	"io"
	"io/fs"
	"os"
)

// backupd does not run on these platforms (wasm, plan9); this keeps the
// package compiling there with the plainest behaviour.

func syncDir(string) error                      { return nil }
func syncPrivateFile(string, fs.FileInfo) error { return nil }
func idOf(fs.FileInfo) (fileID, bool)           { return fileID{}, false }
func linkUnsupported(err error) bool            { return errors.Is(err, errors.ErrUnsupported) }
func tooManyLinks(error) bool                   { return false }
func lockFile(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return f, errLockUnsupported
}

func lockPinFile(path string, _ bool) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return f, errLockUnsupported
}
