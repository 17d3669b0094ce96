package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/backupd/backupd/cause"
)

// ErrHostile is wrapped by every error that comes from a device doing
// what no iPhone does to a host: naming a path outside the staging root
// (or one no iPhone sends), or sending far more than it announced. Such a
// device is broken or attacking the host; nothing it asked for outside
// the backup is done, and the backup ends with cause protocol_error. Test
// with errors.Is.
var ErrHostile = errors.New("refused a hostile device")

// EscapeError is a device path refused because it leaves, or could leave,
// the staging root. Nothing was done with it.
type EscapeError struct {
	// Op is the DeviceLink message that named the path.
	Op string
	// Path is the path as the device sent it, cut to 256 bytes.
	Path string
	// Reason says what is wrong with it.
	Reason string
}

func (e *EscapeError) Error() string {
	return fmt.Sprintf("%s: refused path %q: %s", e.Op, e.Path, e.Reason)
}

// Unwrap makes errors.Is(err, ErrHostile) true.
func (e *EscapeError) Unwrap() error { return ErrHostile }

// CauseCode: a device that names such paths is not one we understand.
func (e *EscapeError) CauseCode() cause.Code { return cause.ProtocolError }

func escape(op, p, reason string) *EscapeError {
	if len(p) > 256 {
		p = p[:256] + "…"
	}
	return &EscapeError{Op: op, Path: p, Reason: reason}
}

// devicePath checks a path the device named and returns it cleaned, with
// '/' separators, relative to the staging root. It is purely lexical: it
// refuses what no iPhone sends (empty, over maxLen, NUL, a backslash, a
// ".." component, a name Windows reserves) so that such a path is never
// handed to the file system at all. What only the file system can tell —
// a symlink on the way — os.Root refuses afterwards.
//
// A leading '/' is not refused: real iPhones have named absolute-looking
// paths such as "/.b/6/..." in file operations, and their backups
// completed because libimobiledevice joins every device path to the
// backup directory with a '/', which maps it under that directory.
// backupd does the same, on purpose: the leading slashes are dropped and
// the rest is confined like any other path, so "/etc/passwd" names
// <root>/etc/passwd and never the host's file. (pymobiledevice3 joins
// with pathlib, where an absolute path replaces the root: no host should
// copy that.)
//
// allowRoot permits a path naming the staging root itself ("." or "x/..",
// though the latter is refused for its ".."), which listing and mkdir may
// name harmlessly but no mutation may.
func devicePath(op, p string, maxLen int, allowRoot bool) (string, error) {
	switch {
	case p == "":
		return "", escape(op, p, "empty path")
	case len(p) > maxLen:
		return "", escape(op, p, fmt.Sprintf("%d bytes long (limit %d)", len(p), maxLen))
	case strings.IndexByte(p, 0) >= 0:
		return "", escape(op, p, "contains a NUL byte")
	case strings.IndexByte(p, '\\') >= 0:
		// A separator on Windows; no iPhone path has one.
		return "", escape(op, p, "contains a backslash")
	}
	raw := p
	if p = strings.TrimLeft(p, "/"); p == "" {
		p = "." // "/" names the root itself
	}
	dotdot, clean := scanPath(p)
	if dotdot {
		return "", escape(op, raw, "has a .. component")
	}
	if !clean {
		p = path.Clean(p)
	}
	if p == "." {
		if allowRoot {
			return ".", nil
		}
		return "", escape(op, raw, "names the backup directory itself")
	}
	// On Windows this also refuses drive letters, colons (alternate
	// streams) and reserved names such as NUL or COM1.
	if !filepath.IsLocal(filepath.FromSlash(p)) {
		return "", escape(op, raw, "not a local path on this system")
	}
	return p, nil
}

// scanPath reports whether a relative slash-separated path has a ".."
// component, and whether it is already clean (no empty or "." component),
// so that path.Clean runs only for the paths that need it: a backup
// checks some 200 000 paths, nearly all of them clean.
func scanPath(p string) (dotdot, clean bool) {
	if p != "" && strings.IndexByte(p, '.') < 0 {
		// No "." or ".." component can be there: the usual case (the
		// staging's hashed names), answered without a loop.
		return false, p[0] != '/' && p[len(p)-1] != '/' && !strings.Contains(p, "//")
	}
	clean = true
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		switch p[start:i] {
		case "..":
			return true, false
		case "", ".":
			clean = false
		}
		start = i + 1
	}
	return false, clean
}

// errPathEscapesText is the text of os.Root's unexported error for a path
// that leaves the root, typically through a symlink. os exports no
// sentinel for it, so isRootEscape compares the text; a test pins it.
const errPathEscapesText = "path escapes from parent"

// isRootEscape reports whether err is os.Root refusing a path that leaves
// the root.
func isRootEscape(err error) bool {
	for err != nil {
		if err.Error() == errPathEscapesText {
			return true
		}
		switch e := err.(type) {
		case *fs.PathError:
			err = e.Err
		case *os.LinkError:
			err = e.Err
		default:
			err = errors.Unwrap(err)
		}
	}
	return false
}
