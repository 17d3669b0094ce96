package mbfile

import (
	"fmt"

	"github.com/backupd/backupd/proto/wire"
)

// Size reads only the Size of an MBFile archive, walking the binary plist
// in place: the top dictionary's $top.root and $objects, the root object,
// its Size. Decode builds every object of the archive; verifying a backup
// of many small files reads one Size per file and nothing else.
//
// Size checks only what it walks, so it accepts some archives Decode
// refuses (a missing Mode, say); whatever binary archive Decode accepts,
// Size reads to the same Size.
func Size(blob []byte) (int64, error) {
	if len(blob) > MaxArchive {
		return 0, fmt.Errorf("%w: %d bytes (limit %d)", ErrMalformed, len(blob), MaxArchive)
	}
	n, err := size(blob)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return n, nil
}

func size(blob []byte) (int64, error) {
	p, err := wire.OpenBplist(blob)
	if err != nil {
		return 0, err
	}
	value := func(ref wire.Ref, key string) (wire.Ref, error) {
		v, ok, err := p.DictValue(ref, key)
		if err == nil && !ok {
			err = fmt.Errorf("no %s", key)
		}
		return v, err
	}
	top, err := value(p.Top(), "$top")
	if err != nil {
		return 0, err
	}
	rootRef, err := value(top, "root")
	if err != nil {
		return 0, err
	}
	root, err := p.UID(rootRef)
	if err != nil {
		return 0, err
	}
	objects, err := value(p.Top(), "$objects")
	if err != nil {
		return 0, err
	}
	count, element, err := p.Array(objects)
	if err != nil {
		return 0, err
	}
	if root >= count {
		return 0, fmt.Errorf("reference %d outside $objects (%d)", root, count)
	}
	sizeRef, err := value(element(root), "Size")
	if err != nil {
		return 0, err
	}
	n, err := p.Int(sizeRef)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("negative Size %d", n)
	}
	return n, nil
}
