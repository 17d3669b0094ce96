package contents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Limits on names from a backup: what common file systems accept.
const (
	maxPathLen    = 4096
	maxElementLen = 255
)

// ExtractOptions say what Extract copies and how.
type ExtractOptions struct {
	Filter Filter
	// Overwrite replaces files already in the destination; without it
	// they are skipped.
	Overwrite bool
	// Progress, if set, is called as bytes are written (at most every
	// progressEvery bytes) and after each file.
	Progress func(Progress)
}

// Progress is how far an extraction is.
type Progress struct {
	Files, TotalFiles int
	Bytes, TotalBytes int64
	Current           string // the file being written
}

// Skip is a file not extracted on purpose.
type Skip struct {
	Name, Reason string
}

// Summary is what an extraction did.
type Summary struct {
	Files   int   // files written
	Bytes   int64 // their bytes
	Skipped []Skip
	Failed  []*FileError
}

// progressEvery is how often, in bytes, Progress hears of a large file.
const progressEvery = 4 << 20

// Extract copies the regular files the filter chooses into dest, each to
// dest/<Domain>/<relativePath> with its modification time from the
// backup. dest is created if missing and written only through an os.Root
// on it: a name with "..", an absolute path, a NUL or an impossible length
// is skipped and reported, and nothing lands outside dest. A file that
// fails is reported by name and the others go on. Each file is written
// under a temporary name and renamed into place when whole, so a failed
// one leaves nothing. The error is for what stops it all (the context,
// dest unusable, Manifest.db unreadable).
func Extract(ctx context.Context, b *Backup, dest string, opt ExtractOptions) (Summary, error) {
	var sum Summary
	if err := opt.Filter.Validate(); err != nil {
		return sum, err
	}
	total, err := b.tally(ctx, opt.Filter)
	if err != nil {
		return sum, err
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return sum, fmt.Errorf("contents: %w", err)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return sum, fmt.Errorf("contents: %w", err)
	}
	defer root.Close()
	x := &extractor{ctx: ctx, b: b, root: root, dirs: destDirs{root: root, open: map[string]*os.Root{}}, opt: opt, sum: &sum, prog: total, buf: make([]byte, 256<<10)}
	defer x.dirs.close()
	for e, err := range b.Files(ctx, opt.Filter) {
		if err != nil {
			return sum, err
		}
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		x.one(e)
	}
	return sum, nil
}

// tally counts what the filter chooses, for the progress totals.
func (b *Backup) tally(ctx context.Context, f Filter) (Progress, error) {
	var p Progress
	for e, err := range b.files(ctx, f, sizeOf) {
		if err != nil {
			return p, err
		}
		if e.Kind == KindFile {
			p.TotalFiles++
			p.TotalBytes += e.Size
		}
	}
	return p, nil
}

type extractor struct {
	ctx  context.Context
	b    *Backup
	root *os.Root
	dirs destDirs
	opt  ExtractOptions
	sum  *Summary
	prog Progress
	buf  []byte
}

func (x *extractor) skip(e Entry, reason string) {
	x.sum.Skipped = append(x.sum.Skipped, Skip{Name: e.Name(), Reason: reason})
}

func (x *extractor) one(e Entry) {
	switch e.Kind {
	case KindFile:
	case KindDir:
		return // made as the files in it need them
	case KindSymlink:
		x.skip(e, fmt.Sprintf("a symbolic link (to %q) is not extracted", e.Target))
		return
	default:
		x.skip(e, fmt.Sprintf("unknown flags %d", int(e.Kind)))
		return
	}
	name, reason := localName(e.Domain, e.RelativePath)
	if reason != "" {
		x.skip(e, reason)
		return
	}
	if !x.opt.Overwrite && x.exists(name) {
		x.skip(e, "already in the destination (use overwrite to replace it)")
		return
	}
	x.prog.Current = e.Name()
	n, err := x.write(e, name)
	if err != nil {
		var fe *FileError
		if !errors.As(err, &fe) {
			fe = &FileError{Name: e.Name(), FileID: e.FileID, Err: err}
		}
		x.sum.Failed = append(x.sum.Failed, fe)
		return
	}
	x.sum.Files++
	x.sum.Bytes += n
	x.prog.Files++
	x.report()
}

func (x *extractor) report() {
	if x.opt.Progress != nil {
		x.opt.Progress(x.prog)
	}
}

// exists says whether name is taken in the destination. Its directory is
// looked at through its handle when open; a directory not opened yet is
// often missing, and is not made for a file that may then fail.
func (x *extractor) exists(name string) bool {
	var err error
	if d := x.dirs.open[filepath.Dir(name)]; d != nil {
		_, err = d.Lstat(filepath.Base(name))
	} else {
		_, err = x.root.Lstat(name)
	}
	return err == nil
}

// write copies one file to name under a temporary name, sets its time
// and renames it into place.
func (x *extractor) write(e Entry, name string) (n int64, err error) {
	src, err := x.b.Open(e)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	dir, err := x.dirs.get(filepath.Dir(name))
	if err != nil {
		return 0, err
	}
	base, tmp := filepath.Base(name), "."+tempSuffix()
	out, err := dir.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			out.Close()
			dir.Remove(tmp)
		}
	}()
	start := x.prog.Bytes
	n, err = io.CopyBuffer(&progressWriter{w: out, x: x}, src, x.buf)
	if err != nil {
		x.prog.Bytes = start
		return 0, err
	}
	if err := out.Close(); err != nil {
		return 0, err
	}
	if err := dir.Chtimes(tmp, e.ModTime, e.ModTime); err != nil {
		return 0, err
	}
	if !x.opt.Overwrite {
		// A file that appeared while this one was written stays.
		if _, err := dir.Lstat(base); err == nil {
			return 0, fmt.Errorf("%s appeared in the destination meanwhile: %w", name, fs.ErrExist)
		}
	}
	return n, dir.Rename(tmp, base)
}

// maxOpenDirs bounds the destination directories an extraction keeps
// open. Files come in order of domain and path, so those of a directory
// come together and a few handles serve nearly all of them.
const maxOpenDirs = 64

// destDirs are the destination's directories, each opened once through
// the root. A file's five operations (look, create, set its time, look
// again, rename) then each cost one call on its directory's handle,
// where through the root each opened and closed every directory of its
// path anew: most of the time of a backup of small files.
type destDirs struct {
	root *os.Root
	open map[string]*os.Root
}

// get returns directory d of the destination, made if missing.
func (c *destDirs) get(d string) (*os.Root, error) {
	if r := c.open[d]; r != nil {
		return r, nil
	}
	if len(c.open) >= maxOpenDirs {
		c.close()
	}
	if err := c.root.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	r, err := c.root.OpenRoot(d)
	if err != nil {
		return nil, err
	}
	c.open[d] = r
	return r, nil
}

func (c *destDirs) close() {
	for _, r := range c.open {
		r.Close()
	}
	clear(c.open)
}

func tempSuffix() string {
	var b [8]byte
	rand.Read(b[:])
	return "backupd-extract-" + hex.EncodeToString(b[:])
}

// progressWriter counts bytes written and reports every progressEvery.
type progressWriter struct {
	w       io.Writer
	x       *extractor
	pending int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if err := p.x.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.w.Write(b)
	p.x.prog.Bytes += int64(n)
	p.pending += int64(n)
	if p.pending >= progressEvery {
		p.pending = 0
		p.x.report()
	}
	return n, err
}

// localName turns a domain and relative path from the backup into a path
// under the destination, or says why it cannot be one.
func localName(domain, rel string) (string, string) {
	switch {
	case domain == "":
		return "", "empty domain"
	case rel == "":
		return "", "empty relative path"
	case strings.ContainsRune(domain, 0) || strings.ContainsRune(rel, 0):
		return "", "name contains a NUL byte"
	case len(domain)+1+len(rel) > maxPathLen:
		return "", fmt.Sprintf("name longer than %d bytes", maxPathLen)
	case strings.ContainsAny(domain, `/\`):
		return "", "domain contains a path separator"
	case strings.HasPrefix(rel, "/"):
		return "", "absolute path"
	}
	for _, el := range append([]string{domain}, strings.Split(rel, "/")...) {
		switch {
		case el == "..":
			return "", `name contains ".."`
		case el == "" || el == ".":
			return "", "name contains an empty or \".\" element"
		case len(el) > maxElementLen:
			return "", fmt.Sprintf("a name element is longer than %d bytes", maxElementLen)
		}
	}
	name := filepath.Join(domain, filepath.FromSlash(rel))
	if !filepath.IsLocal(name) || (filepath.Separator != '/' && strings.ContainsRune(rel, filepath.Separator)) {
		return "", "not a valid local name on this system"
	}
	return name, ""
}
