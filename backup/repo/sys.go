package repo

import "errors"

// Errors the platform files return when the file system lacks a feature;
// each has a fallback.
var (
	errLockUnsupported = errors.New("file locking not supported")
	errNoExchange      = errors.New("atomic exchange not supported")
	errNoReflink       = errors.New("reflink not supported")
)

// fileID identifies a directory across renames: the journal records the
// staged and the latest trees' IDs, because after an exchange both names
// exist either way and only identity says whether it happened.
type fileID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}
