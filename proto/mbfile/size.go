package mbfile

import (
	"encoding/binary"
	"fmt"
)

// Size reads only the Size of an MBFile archive, walking the binary plist
// in place: the top dictionary's $top.root and $objects, the root object,
// its Size. It allocates nothing, where Decode builds every object of the
// archive; verifying a backup of many small files reads one Size per file
// and nothing else.
//
// Size checks only what it walks, so it accepts some archives Decode
// refuses (a missing Mode, say); whatever Decode accepts, Size reads to
// the same Size.
func Size(blob []byte) (int64, error) {
	p, err := openBplist(blob)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	n, err := p.size()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return n, nil
}

// bplist is a binary plist ("bplist00") read in place. Facts of the
// format: a 32-byte trailer ends it (the sizes of offsets and of object
// references, the object count, the top object, where the offset table
// starts); the offset table gives each object's start; an object starts
// with a marker byte, type in the high nibble, a count in the low one
// (0xF: an integer object with the count follows).
type bplist struct {
	b                []byte
	offSize, refSize int
	n, top           uint64
	table            int // where the offset table starts
}

const (
	bplistMagic   = "bplist00"
	trailerLen    = 32
	markerInt     = 0x1
	markerASCII   = 0x5
	markerUTF16   = 0x6
	markerUID     = 0x8
	markerArray   = 0xA
	markerDict    = 0xD
	countFollows  = 0xF
	maxRefOrInt   = 8
	minBplistSize = len(bplistMagic) + trailerLen
)

func openBplist(b []byte) (*bplist, error) {
	if len(b) < minBplistSize || len(b) > MaxArchive || string(b[:len(bplistMagic)]) != bplistMagic {
		return nil, fmt.Errorf("not a binary plist of %d to %d bytes", minBplistSize, MaxArchive)
	}
	t := b[len(b)-trailerLen:]
	p := &bplist{b: b, offSize: int(t[6]), refSize: int(t[7]),
		n: binary.BigEndian.Uint64(t[8:]), top: binary.BigEndian.Uint64(t[16:])}
	table := binary.BigEndian.Uint64(t[24:])
	end := uint64(len(b) - trailerLen)
	switch {
	case p.offSize < 1 || p.offSize > maxRefOrInt || p.refSize < 1 || p.refSize > maxRefOrInt:
		return nil, fmt.Errorf("offset size %d, reference size %d", p.offSize, p.refSize)
	case table < uint64(len(bplistMagic)) || table > end:
		return nil, fmt.Errorf("offset table at %d", table)
	case p.n > (end-table)/uint64(p.offSize) || p.top >= p.n:
		return nil, fmt.Errorf("%d objects, top %d", p.n, p.top)
	}
	p.table = int(table)
	return p, nil
}

// uint reads a big-endian unsigned integer of n bytes at off.
func (p *bplist) uint(off, n int) (uint64, error) {
	if off < 0 || n > len(p.b)-off {
		return 0, fmt.Errorf("%d bytes at %d past the end", n, off)
	}
	var v uint64
	for _, c := range p.b[off : off+n] {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// object returns where object ref starts, its marker's type and count,
// and where its contents start.
func (p *bplist) object(ref uint64) (typ byte, count uint64, body int, err error) {
	if ref >= p.n {
		return 0, 0, 0, fmt.Errorf("reference %d outside %d objects", ref, p.n)
	}
	off, _ := p.uint(p.table+int(ref)*p.offSize, p.offSize) // inside the table: openBplist checked
	if off < uint64(len(bplistMagic)) || off >= uint64(p.table) {
		return 0, 0, 0, fmt.Errorf("object %d at %d", ref, off)
	}
	at := int(off)
	m := p.b[at]
	typ, count, body = m>>4, uint64(m&0xF), at+1
	if count == countFollows && typ != markerInt && typ != markerUID {
		if body >= p.table || p.b[body]>>4 != markerInt || p.b[body]&0xF > 3 {
			return 0, 0, 0, fmt.Errorf("object %d: bad count", ref)
		}
		w := 1 << (p.b[body] & 0xF)
		if count, err = p.uint(body+1, w); err != nil {
			return 0, 0, 0, err
		}
		body += 1 + w
	}
	return typ, count, body, nil
}

// dictValue returns the value of key in dictionary ref; like the plist
// decoders, the last of repeated keys wins.
func (p *bplist) dictValue(ref uint64, key string) (uint64, bool, error) {
	typ, count, body, err := p.object(ref)
	if err != nil {
		return 0, false, err
	}
	if typ != markerDict {
		return 0, false, fmt.Errorf("object %d is not a dictionary", ref)
	}
	if count > uint64(p.table-body)/uint64(2*p.refSize) {
		return 0, false, fmt.Errorf("dictionary %d of %d entries overruns", ref, count)
	}
	var val uint64
	found := false
	for i := range int(count) {
		k, _ := p.uint(body+i*p.refSize, p.refSize)
		if !p.isString(k, key) {
			continue
		}
		val, _ = p.uint(body+(int(count)+i)*p.refSize, p.refSize)
		found = true
	}
	return val, found, nil
}

// isString reports whether object ref is the string s (ASCII or UTF-16,
// as a plist may store either).
func (p *bplist) isString(ref uint64, s string) bool {
	typ, count, body, err := p.object(ref)
	if err != nil || count != uint64(len(s)) {
		return false
	}
	switch typ {
	case markerASCII:
		return body+len(s) <= p.table && string(p.b[body:body+len(s)]) == s
	case markerUTF16:
		if body+2*len(s) > p.table {
			return false
		}
		for i := range len(s) {
			if p.b[body+2*i] != 0 || p.b[body+2*i+1] != s[i] {
				return false
			}
		}
		return true
	}
	return false
}

// integer reads integer object ref as Decode does: 1, 2 and 4 bytes are
// unsigned, 8 bytes signed.
func (p *bplist) integer(ref uint64) (int64, error) {
	typ, n, body, err := p.object(ref)
	if err != nil {
		return 0, err
	}
	if typ != markerInt || n > 3 {
		return 0, fmt.Errorf("object %d is not an integer", ref)
	}
	v, err := p.uint(body, 1<<n)
	if err != nil || body+(1<<n) > p.table {
		return 0, fmt.Errorf("integer %d overruns", ref)
	}
	// 8 bytes are signed: a negative Size, which size refuses.
	return int64(v), nil
}

// uid reads UID object ref.
func (p *bplist) uid(ref uint64) (uint64, error) {
	typ, n, body, err := p.object(ref)
	if err != nil {
		return 0, err
	}
	if typ != markerUID || n > 7 || body+int(n)+1 > p.table {
		return 0, fmt.Errorf("object %d is not a reference", ref)
	}
	return p.uint(body, int(n)+1)
}

// element returns element i of array ref.
func (p *bplist) element(ref, i uint64) (uint64, error) {
	typ, count, body, err := p.object(ref)
	if err != nil {
		return 0, err
	}
	if typ != markerArray {
		return 0, fmt.Errorf("object %d is not an array", ref)
	}
	if count > uint64(p.table-body)/uint64(p.refSize) {
		return 0, fmt.Errorf("array %d of %d elements overruns", ref, count)
	}
	if i >= count {
		return 0, fmt.Errorf("reference %d outside $objects (%d)", i, count)
	}
	return p.uint(body+int(i)*p.refSize, p.refSize)
}

// size follows $top.root into $objects and reads the root's Size.
func (p *bplist) size() (int64, error) {
	step := func(ref uint64, key string) (uint64, error) {
		v, ok, err := p.dictValue(ref, key)
		if err == nil && !ok {
			err = fmt.Errorf("no %s", key)
		}
		return v, err
	}
	topDict, err := step(p.top, "$top")
	if err != nil {
		return 0, err
	}
	rootRef, err := step(topDict, "root")
	if err != nil {
		return 0, err
	}
	root, err := p.uid(rootRef)
	if err != nil {
		return 0, err
	}
	objects, err := step(p.top, "$objects")
	if err != nil {
		return 0, err
	}
	obj, err := p.element(objects, root)
	if err != nil {
		return 0, err
	}
	sizeRef, err := step(obj, "Size")
	if err != nil {
		return 0, err
	}
	n, err := p.integer(sizeRef)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("negative Size %d", n)
	}
	return n, nil
}
