package devicelink

import (
	"io/fs"
	"time"

	"github.com/backupd/backupd/proto/wire"
)

// The file types of a DLContentsOfDirectory answer.
const (
	FileTypeDirectory = "DLFileTypeDirectory"
	FileTypeRegular   = "DLFileTypeRegular"
	FileTypeUnknown   = "DLFileTypeUnknown"
)

// DirEntry is one entry of a DLContentsOfDirectory answer.
type DirEntry struct {
	Name    string
	Type    string // FileTypeDirectory, FileTypeRegular or FileTypeUnknown
	Size    uint64
	ModTime time.Time
}

// EntryOf describes a file as a listing gives it.
func EntryOf(name string, fi fs.FileInfo) DirEntry {
	typ := FileTypeUnknown
	switch {
	case fi.IsDir():
		typ = FileTypeDirectory
	case fi.Mode().IsRegular():
		typ = FileTypeRegular
	}
	return DirEntry{Name: name, Type: typ, Size: uint64(max(fi.Size(), 0)), ModTime: fi.ModTime()}
}

// Listing is the payload of a DLContentsOfDirectory answer: a dictionary
// of names, each a dictionary of DLFileType, DLFileSize and
// DLFileModificationDate. A phone lists every folder of its backup at
// the end of one, so a listing is written entry by entry rather than
// built as a map per file first.
type Listing []DirEntry

// AppendBplist adds the listing to a binary plist.
func (l Listing) AppendBplist(b *wire.BplistBuilder) (wire.Ref, error) {
	kType, kSize, kDate := b.String("DLFileType"), b.String("DLFileSize"), b.String("DLFileModificationDate")
	refs := make([]wire.Ref, 2*len(l))
	for i, e := range l {
		refs[i] = b.String(e.Name)
		keys := [...]wire.Ref{kType, kSize, kDate}
		values := [...]wire.Ref{b.String(e.Type), b.Uint(e.Size), b.Date(e.ModTime)}
		refs[len(l)+i] = b.Dict(keys[:], values[:])
	}
	return b.Dict(refs[:len(l)], refs[len(l):]), nil
}

// MarshalPlist gives the listing as maps to the plist library, for an
// XML plist.
func (l Listing) MarshalPlist() (any, error) {
	out := make(map[string]any, len(l))
	for _, e := range l {
		out[e.Name] = map[string]any{
			"DLFileType":             e.Type,
			"DLFileSize":             e.Size,
			"DLFileModificationDate": e.ModTime.UTC(),
		}
	}
	return out, nil
}
