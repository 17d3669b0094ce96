// Package mbfile encodes and decodes MBFile, the record an iPhone keeps for
// each file, directory and symbolic link of a backup in the file column
// of Manifest.db's Files table: an NSKeyedArchiver binary plist whose root
// object holds the file's size, mode, times, protection class and, in an
// encrypted backup, the file's own wrapped key.
//
// Both the host (which reads backups) and the simulated iPhone (which
// writes them) use it, so that there is one definition of the format.
package mbfile

import (
	"errors"
	"fmt"
	"math"

	"howett.net/plist"

	"github.com/backupd/backupd/proto/wire"
)

// MaxArchive bounds the archive Decode accepts. Real records are a few
// hundred bytes; extended attributes can add a few KiB.
const MaxArchive = 1 << 20

// KeyLen is the length of EncryptionKey: a 4-byte little-endian protection
// class and a 40-byte AES-wrapped 256-bit key.
const KeyLen = 44

// ErrMalformed is wrapped by every Decode error: the blob is not an MBFile
// archive. It is a protocol error in the backup, never a panic.
var ErrMalformed = errors.New("mbfile: malformed MBFile archive")

// File is one MBFile record. Times are Unix seconds, as iOS stores them.
type File struct {
	RelativePath     string
	Size             int64
	Mode             uint32 // file type bits included (S_IFREG, S_IFDIR, S_IFLNK)
	LastModified     int64
	LastStatusChange int64
	Birth            int64
	InodeNumber      uint64
	UserID, GroupID  int64
	Flags            int64
	ProtectionClass  uint32
	// EncryptionKey is nil in a plain backup; in an encrypted one it is
	// KeyLen bytes: the class (little-endian) and the wrapped key.
	EncryptionKey []byte
	// Target is a symbolic link's target.
	Target string
	// Generation is not one of Apple's keys: the simulated iPhone records
	// the generation of a file's content in it, which real readers ignore.
	Generation uint64
}

// File type bits of Mode.
const (
	typeMask    = 0o170000
	typeRegular = 0o100000
	typeDir     = 0o040000
	typeSymlink = 0o120000
)

// IsDir reports whether Mode says directory.
func (f File) IsDir() bool { return f.Mode&typeMask == typeDir }

// IsSymlink reports whether Mode says symbolic link.
func (f File) IsSymlink() bool { return f.Mode&typeMask == typeSymlink }

// IsRegular reports whether Mode says regular file.
func (f File) IsRegular() bool { return f.Mode&typeMask == typeRegular }

// archive is the NSKeyedArchiver envelope.
type archive struct {
	Archiver string         `plist:"$archiver"`
	Version  any            `plist:"$version"`
	Top      map[string]any `plist:"$top"`
	Objects  []any          `plist:"$objects"`
}

// Decode reads an MBFile archive. Unknown keys are ignored; a missing Size
// or Mode is an error, since every real record has them.
func Decode(blob []byte) (File, error) {
	if len(blob) == 0 {
		return File{}, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if len(blob) > MaxArchive {
		return File{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrMalformed, len(blob), MaxArchive)
	}
	var a archive
	if err := wire.Decode(blob, &a); err != nil {
		return File{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if a.Archiver != "NSKeyedArchiver" {
		return File{}, fmt.Errorf("%w: $archiver is %q", ErrMalformed, a.Archiver)
	}
	d := decoder{objs: a.Objects}
	root, ok := a.Top["root"].(plist.UID)
	if !ok {
		return File{}, fmt.Errorf("%w: $top has no root reference", ErrMalformed)
	}
	obj, err := d.dict(root)
	if err != nil {
		return File{}, fmt.Errorf("%w: root: %v", ErrMalformed, err)
	}
	if err := d.checkClass(obj, "MBFile"); err != nil {
		return File{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	f, err := d.file(obj)
	if err != nil {
		return File{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return f, nil
}

type decoder struct{ objs []any }

// deref follows a UID into $objects.
func (d decoder) deref(v any) (any, error) {
	uid, ok := v.(plist.UID)
	if !ok {
		return nil, fmt.Errorf("%T where a reference belongs", v)
	}
	if uint64(uid) >= uint64(len(d.objs)) {
		return nil, fmt.Errorf("reference %d outside $objects (%d)", uid, len(d.objs))
	}
	return d.objs[uid], nil
}

func (d decoder) dict(ref plist.UID) (map[string]any, error) {
	v, err := d.deref(ref)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("object %d is a %T, not a dictionary", ref, v)
	}
	return m, nil
}

// checkClass checks that obj's $class names want (or a subclass of it).
func (d decoder) checkClass(obj map[string]any, want string) error {
	ref, ok := obj["$class"].(plist.UID)
	if !ok {
		return fmt.Errorf("object has no $class")
	}
	cls, err := d.dict(ref)
	if err != nil {
		return fmt.Errorf("$class: %v", err)
	}
	if name, _ := cls["$classname"].(string); name == want {
		return nil
	}
	chain, _ := cls["$classes"].([]any)
	for _, c := range chain {
		if c == want {
			return nil
		}
	}
	return fmt.Errorf("class %v is not %s", cls["$classname"], want)
}

func (d decoder) file(obj map[string]any) (File, error) {
	var f File
	var err error
	need := func(key string) int64 {
		if err != nil {
			return 0
		}
		n, ok := toInt(obj[key])
		if !ok {
			err = fmt.Errorf("%s is missing or not an integer", key)
		}
		return n
	}
	opt := func(key string) int64 {
		n, _ := toInt(obj[key])
		return n
	}
	f.Size = need("Size")
	mode := need("Mode")
	if err != nil {
		return File{}, err
	}
	if f.Size < 0 {
		return File{}, fmt.Errorf("negative Size %d", f.Size)
	}
	if mode < 0 || mode > math.MaxUint32 {
		return File{}, fmt.Errorf("mode %d out of range", mode)
	}
	f.Mode = uint32(mode)
	f.LastModified = opt("LastModified")
	f.LastStatusChange = opt("LastStatusChange")
	f.Birth = opt("Birth")
	f.InodeNumber = uint64(opt("InodeNumber"))
	f.UserID, f.GroupID, f.Flags = opt("UserID"), opt("GroupID"), opt("Flags")
	f.Generation = uint64(opt("Generation"))
	if pc := opt("ProtectionClass"); pc >= 0 && pc <= math.MaxUint32 {
		f.ProtectionClass = uint32(pc)
	}
	if f.RelativePath, err = d.optString(obj, "RelativePath"); err != nil {
		return File{}, err
	}
	if f.Target, err = d.optString(obj, "Target"); err != nil {
		return File{}, err
	}
	if f.EncryptionKey, err = d.optData(obj, "EncryptionKey"); err != nil {
		return File{}, err
	}
	if f.EncryptionKey != nil && len(f.EncryptionKey) != KeyLen {
		return File{}, fmt.Errorf("EncryptionKey is %d bytes, not %d", len(f.EncryptionKey), KeyLen)
	}
	return f, nil
}

// optString reads a string held by reference; "$null" and absence are "".
func (d decoder) optString(obj map[string]any, key string) (string, error) {
	v, ok := obj[key]
	if !ok {
		return "", nil
	}
	o, err := d.deref(v)
	if err != nil {
		return "", fmt.Errorf("%s: %v", key, err)
	}
	s, ok := o.(string)
	if !ok {
		return "", fmt.Errorf("%s is a %T, not a string", key, o)
	}
	if s == "$null" {
		return "", nil
	}
	return s, nil
}

// optData reads an NSData held by reference: either bare data or an
// NSData/NSMutableData object with NS.data.
func (d decoder) optData(obj map[string]any, key string) ([]byte, error) {
	v, ok := obj[key]
	if !ok {
		return nil, nil
	}
	o, err := d.deref(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", key, err)
	}
	switch o := o.(type) {
	case []byte:
		return o, nil
	case string:
		if o == "$null" {
			return nil, nil
		}
	case map[string]any:
		if err := d.checkClass(o, "NSData"); err != nil {
			return nil, fmt.Errorf("%s: %v", key, err)
		}
		b, ok := o["NS.data"].([]byte)
		if !ok {
			return nil, fmt.Errorf("%s has no NS.data", key)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%s is a %T, not data", key, o)
}

// toInt reads a plist integer, which the decoder gives as int64 or uint64.
func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

// Encode writes f as an iPhone does: an NSKeyedArchiver archive whose
// $objects are "$null", the MBFile dictionary (index 1, where several
// public readers expect it), the relative path, then the target and the
// key if any, and the class descriptions.
func Encode(f File) ([]byte, error) {
	objs := []any{"$null", nil}
	add := func(v any) plist.UID {
		objs = append(objs, v)
		return plist.UID(len(objs) - 1)
	}
	obj := map[string]any{
		"RelativePath":     add(f.RelativePath),
		"Size":             f.Size,
		"Mode":             int64(f.Mode),
		"LastModified":     f.LastModified,
		"LastStatusChange": f.LastStatusChange,
		"Birth":            f.Birth,
		"InodeNumber":      f.InodeNumber,
		"UserID":           f.UserID,
		"GroupID":          f.GroupID,
		"Flags":            f.Flags,
		"ProtectionClass":  int64(f.ProtectionClass),
	}
	if f.Generation != 0 {
		obj["Generation"] = f.Generation
	}
	if f.Target != "" {
		obj["Target"] = add(f.Target)
	}
	if f.EncryptionKey != nil {
		data := map[string]any{"NS.data": f.EncryptionKey}
		obj["EncryptionKey"] = add(data)
		data["$class"] = add(map[string]any{
			"$classname": "NSMutableData",
			"$classes":   []any{"NSMutableData", "NSData", "NSObject"},
		})
	}
	obj["$class"] = add(map[string]any{"$classname": "MBFile", "$classes": []any{"MBFile", "NSObject"}})
	objs[1] = obj
	return wire.Encode(map[string]any{
		"$archiver": "NSKeyedArchiver",
		"$version":  uint64(100000),
		"$top":      map[string]any{"root": plist.UID(1)},
		"$objects":  objs,
	}, wire.Binary)
}
