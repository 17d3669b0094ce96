package contents

import (
	"context"
	"fmt"
	"iter"
	"path"
	"strings"
	"time"

	"github.com/backupd/backupd/proto/mbfile"
)

// Kind is what Manifest.db's flags column says an entry is.
type Kind int

// Kinds of entries, with their flags values.
const (
	KindFile    Kind = 1
	KindDir     Kind = 2
	KindSymlink Kind = 4
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Entry is one row of Manifest.db's Files table.
type Entry struct {
	FileID       string
	Domain       string
	RelativePath string
	Kind         Kind
	Size         int64
	ModTime      time.Time
	Mode         uint32
	// Target is a symbolic link's target.
	Target string
	// Problem says why the entry's MBFile record could not be read; Size,
	// ModTime and Mode are then zero and the file cannot be opened.
	Problem string

	storedKey []byte // class and wrapped key, in an encrypted backup
}

// Name is the entry as a person names it: "Domain/relativePath".
func (e Entry) Name() string {
	if e.RelativePath == "" {
		return e.Domain
	}
	return e.Domain + "/" + e.RelativePath
}

// Filter chooses entries. The zero Filter chooses all.
type Filter struct {
	// Domain, if set, is the only domain chosen.
	Domain string
	// Globs, if any, are matched against the relative path; an entry
	// matching one is chosen. "*" and "?" stay within a path element,
	// "**" matches any number of elements.
	Globs []string
	// Photos chooses the camera roll's photos and videos.
	Photos bool
}

// Validate reports a malformed glob.
func (f Filter) Validate() error {
	for _, g := range f.Globs {
		for _, seg := range strings.Split(g, "/") {
			if _, err := path.Match(seg, ""); err != nil {
				return fmt.Errorf("contents: bad pattern %q: %w", g, err)
			}
		}
	}
	return nil
}

// Match reports whether the filter chooses e.
func (f Filter) Match(e Entry) bool {
	if f.Domain != "" && e.Domain != f.Domain {
		return false
	}
	if f.Photos && !IsCameraRollMedia(e) {
		return false
	}
	if len(f.Globs) == 0 {
		return true
	}
	for _, g := range f.Globs {
		if globMatch(strings.Split(g, "/"), strings.Split(e.RelativePath, "/")) {
			return true
		}
	}
	return false
}

// globMatch matches path elements against pattern elements, "**" standing
// for any number of elements.
func globMatch(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if globMatch(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// cameraRollExt are the photo and video formats an iPhone's camera roll
// holds.
var cameraRollExt = map[string]bool{
	".heic": true, ".heif": true, ".jpg": true, ".jpeg": true, ".png": true, ".gif": true,
	".dng": true, ".tif": true, ".tiff": true, ".webp": true,
	".mov": true, ".mp4": true, ".m4v": true, ".hevc": true, ".3gp": true,
}

// IsCameraRollMedia reports whether e is a photo or video of the camera
// roll: a file under CameraRollDomain's Media/DCIM.
func IsCameraRollMedia(e Entry) bool {
	return e.Kind == KindFile && e.Domain == "CameraRollDomain" &&
		strings.HasPrefix(e.RelativePath, "Media/DCIM/") &&
		cameraRollExt[strings.ToLower(path.Ext(e.RelativePath))]
}

// Files lists the entries the filter chooses, ordered by domain and
// relative path. It streams: a million entries cost one at a time.
func (b *Backup) Files(ctx context.Context, f Filter) iter.Seq2[Entry, error] {
	return b.files(ctx, f, entryOf)
}

// files lists the entries the filter chooses, each made from its row by
// entry.
func (b *Backup) files(ctx context.Context, f Filter, entry func(Row) Entry) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		var tail string
		var args []any
		if f.Domain != "" {
			tail = `WHERE domain = ?`
			args = append(args, f.Domain)
		}
		for r, err := range b.db.Rows(ctx, tail+` ORDER BY domain, relativePath`, args...) {
			if err != nil {
				yield(Entry{}, err)
				return
			}
			if e := entry(r); f.Match(e) && !yield(e, nil) {
				return
			}
		}
	}
}

// sizeOf is entryOf without the rest of the record: the Size alone is
// read in place (mbfile.Size), for totals over a whole backup.
func sizeOf(r Row) Entry {
	e := Entry{FileID: r.FileID, Domain: r.Domain, RelativePath: r.RelativePath, Kind: Kind(r.Flags)}
	if !r.Oversized {
		e.Size, _ = mbfile.Size(r.Record)
	}
	return e
}

func entryOf(r Row) Entry {
	e := Entry{FileID: r.FileID, Domain: r.Domain, RelativePath: r.RelativePath, Kind: Kind(r.Flags)}
	if r.Oversized {
		e.Problem = fmt.Sprintf("a value of its row is over its bound (a record over %d bytes, or a path over %d)", MaxRecordSize, maxPathSize)
		return e
	}
	rec, err := mbfile.Decode(r.Record)
	if err != nil {
		e.Problem = err.Error()
		return e
	}
	e.Size, e.Mode, e.Target = rec.Size, rec.Mode, rec.Target
	e.ModTime = time.Unix(rec.LastModified, 0)
	e.storedKey = rec.EncryptionKey
	return e
}
