package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// CloneStats says how Begin seeded a staging area.
type CloneStats struct {
	// Mode is the configured clone mode.
	Mode CloneMode
	// Files is the number of regular files cloned; Reflinked + Linked +
	// Copied == Files.
	Files, Reflinked, Linked, Copied int
	// CopiedBytes is the data copied (Copied files only).
	CopiedBytes int64
	// Skipped counts entries that are neither directories nor regular
	// files (an Apple backup has none), left out of the clone.
	Skipped int
}

// cloner copies one tree; it remembers within the clone which methods the
// file system refused, so each is tried once.
type cloner struct {
	r         *Repo
	ctx       context.Context
	mode      CloneMode
	noReflink bool
	noLink    bool
	stats     CloneStats
}

// cloneTree recreates src at dst (which must not exist): directories are
// made 0700, regular files cloned per c.mode. Nothing under src is opened
// for writing.
func (r *Repo) cloneTree(ctx context.Context, src, dst string) (CloneStats, error) {
	r.mu.Lock()
	noLink := r.noLinks
	r.mu.Unlock()
	c := &cloner{r: r, ctx: ctx, mode: r.opts.Clone, noLink: noLink || r.opts.Clone == CloneCopy}
	c.stats.Mode = r.opts.Clone
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o700)
		case d.Type().IsRegular():
			return c.file(p, target)
		default:
			c.stats.Skipped++
			r.log.Warn("not cloning an entry that is neither a file nor a directory", "path", p, "type", d.Type().String())
			return nil
		}
	})
	return c.stats, err
}

func (c *cloner) file(src, dst string) error {
	c.stats.Files++
	if !c.noReflink {
		err := reflink(src, dst)
		switch {
		case err == nil:
			c.stats.Reflinked++
			return nil
		case errors.Is(err, errNoReflink):
			// Usual on ext4 and tmpfs; not worth telling anyone.
			c.noReflink = true
		default:
			return err
		}
	}
	if !c.noLink {
		err := c.link(src, dst)
		switch {
		case err == nil:
			c.stats.Linked++
			return nil
		case tooManyLinks(err):
			// This one file has as many links as the file system allows;
			// copy it and keep linking the rest.
		case linkUnsupported(err):
			c.noLink = true
			c.r.mu.Lock()
			c.r.noLinks = true
			c.r.sayLocked("nolinks", fmt.Sprintf("the file system of %s does not support hard links (%v), so each backup starts from a full copy of the previous one, which needs as much free space again; set clone to \"none\" to keep no older versions instead", c.r.dir, err))
			c.r.mu.Unlock()
		default:
			return err
		}
	}
	n, err := copyFile(src, dst)
	c.stats.Copied++
	c.stats.CopiedBytes += n
	return err
}

func (c *cloner) link(src, dst string) error {
	if err := c.r.opts.faults.linkError(); err != nil {
		return &os.LinkError{Op: "link", Old: src, New: dst, Err: err}
	}
	return os.Link(src, dst)
}

// copyFile streams src into a new file dst (mode 0600) and gives it src's
// modification time. On Linux io.Copy between files uses copy_file_range,
// so the data need not pass through this process at all; nowhere is a
// whole file held in memory. A failed copy leaves no dst.
func copyFile(src, dst string) (n int64, err error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			os.Remove(dst)
		}
	}()
	n, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("copy %s: %w", src, err)
	}
	return n, os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}
