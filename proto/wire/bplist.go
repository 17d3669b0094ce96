package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf16"
)

// Bplist reads a binary plist ("bplist00") in place, one object at a
// time, for the few places that need one value of a large plist or its
// entries one by one (an MBFile's Size, the thousands of moves of a
// MoveItems) without building every object of it, as Decode does.
//
// Facts of the format: a 32-byte trailer ends it (the sizes of offsets
// and of object references, the object count, the top object, where the
// offset table starts); the offset table gives each object's start; an
// object starts with a marker byte, its type in the high nibble and a
// count in the low one (0xF: an integer object with the count follows).
//
// Every read is bounded by the input; a malformed plist gives an error
// wrapping ErrMalformed.
type Bplist struct {
	b                []byte
	offSize, refSize uint64
	n, top           uint64
	table            uint64 // where the offset table starts
}

// Ref names one object of a Bplist.
type Ref uint64

// Object types, the high nibble of a marker.
const (
	bpInt   = 0x1
	bpReal  = 0x2
	bpData  = 0x4
	bpASCII = 0x5
	bpUTF16 = 0x6
	bpUID   = 0x8
	bpArr   = 0xA
	bpSetT  = 0xC
	bpDictT = 0xD

	bplistHeader  = "bplist00"
	bplistTrailer = 32
	countFollows  = 0xF
)

// OpenBplist checks a binary plist's header and trailer.
func OpenBplist(b []byte) (*Bplist, error) {
	bad := func(format string, args ...any) (*Bplist, error) {
		return nil, fmt.Errorf("%w: binary plist: "+format, append([]any{ErrMalformed}, args...)...)
	}
	if len(b) < len(bplistHeader)+bplistTrailer+1 || !bytes.HasPrefix(b, []byte(bplistHeader)) {
		return bad("bad header or too short")
	}
	t := b[len(b)-bplistTrailer:]
	p := &Bplist{b: b, offSize: uint64(t[6]), refSize: uint64(t[7]),
		n: binary.BigEndian.Uint64(t[8:]), top: binary.BigEndian.Uint64(t[16:]),
		table: binary.BigEndian.Uint64(t[24:])}
	end := uint64(len(b) - bplistTrailer)
	switch {
	case !validIntSize(p.offSize) || !validIntSize(p.refSize):
		return bad("offset size %d, reference size %d", p.offSize, p.refSize)
	case p.table < uint64(len(bplistHeader)) || p.table > end || (end-p.table)/p.offSize < p.n:
		return bad("offset table at %d does not fit", p.table)
	// Every object takes at least one byte between the header and the
	// offset table, which bounds the count by the input's size.
	case p.n == 0 || p.n > p.table || p.top >= p.n:
		return bad("%d objects, top object %d", p.n, p.top)
	case p.refSize < 8 && p.n > 1<<(8*p.refSize):
		return bad("%d objects cannot be addressed with %d-byte references", p.n, p.refSize)
	}
	return p, nil
}

// Top is the plist's top object.
func (p *Bplist) Top() Ref { return Ref(p.top) }

// header returns object ref's type, its count and where its contents
// start.
func (p *Bplist) header(ref Ref) (typ byte, count, body uint64, err error) {
	r := uint64(ref)
	if r >= p.n {
		return 0, 0, 0, p.bad("reference %d outside %d objects", r, p.n)
	}
	off := readUint(p.b[p.table+r*p.offSize:], p.offSize)
	if off < uint64(len(bplistHeader)) || off >= p.table {
		return 0, 0, 0, p.bad("object %d at offset %d", r, off)
	}
	m := p.b[off]
	typ, count, body = m>>4, uint64(m&0xF), off+1
	if count != countFollows || typ == bpInt || typ == bpReal || typ == bpUID {
		return typ, count, body, nil
	}
	if body >= p.table {
		return 0, 0, 0, p.bad("truncated count at %d", off)
	}
	size := uint64(1) << (p.b[body] & 0xF)
	if p.b[body]>>4 != bpInt || size > 8 || body+1+size > p.table {
		return 0, 0, 0, p.bad("bad count at %d", off)
	}
	return typ, readUint(p.b[body+1:], size), body + 1 + size, nil
}

func (p *Bplist) bad(format string, args ...any) error {
	return fmt.Errorf("%w: binary plist: "+format, append([]any{ErrMalformed}, args...)...)
}

// refs returns the count references of a container starting at body,
// refusing a container that runs past the offset table.
func (p *Bplist) refs(body, count uint64) (uint64, error) {
	if count > (p.table-body)/p.refSize {
		return 0, p.bad("container at %d runs past the offset table", body)
	}
	return count, nil
}

func (p *Bplist) ref(body, i uint64) Ref {
	return Ref(readUint(p.b[body+i*p.refSize:], p.refSize))
}

// Dict calls fn for each entry of dictionary ref, in the plist's order,
// until fn returns an error.
func (p *Bplist) Dict(ref Ref, fn func(key, value Ref) error) error {
	typ, count, body, err := p.header(ref)
	if err != nil {
		return err
	}
	if typ != bpDictT {
		return p.bad("object %d is not a dictionary", ref)
	}
	if count > math.MaxUint64/2 {
		return p.bad("dictionary of %d entries", count)
	}
	if _, err := p.refs(body, 2*count); err != nil {
		return err
	}
	for i := range count {
		if err := fn(p.ref(body, i), p.ref(body, count+i)); err != nil {
			return err
		}
	}
	return nil
}

// DictValue returns the value of key in dictionary ref; as in the plist
// decoders, the last of repeated keys wins.
func (p *Bplist) DictValue(ref Ref, key string) (v Ref, ok bool, err error) {
	err = p.Dict(ref, func(k, val Ref) error {
		if p.IsString(k, key) {
			v, ok = val, true
		}
		return nil
	})
	return v, ok, err
}

// Array returns the elements of array ref: its count, and element(i).
func (p *Bplist) Array(ref Ref) (count uint64, element func(i uint64) Ref, err error) {
	typ, count, body, err := p.header(ref)
	if err != nil {
		return 0, nil, err
	}
	if typ != bpArr {
		return 0, nil, p.bad("object %d is not an array", ref)
	}
	if _, err := p.refs(body, count); err != nil {
		return 0, nil, err
	}
	return count, func(i uint64) Ref { return p.ref(body, i) }, nil
}

// String reads string ref, ASCII or UTF-16.
func (p *Bplist) String(ref Ref) (string, error) {
	raw, utf16, err := p.stringBytes(ref)
	if err != nil {
		return "", err
	}
	if !utf16 {
		return string(raw), nil
	}
	return decodeUTF16(raw), nil
}

// IsString reports whether ref is the string s, without a copy.
func (p *Bplist) IsString(ref Ref, s string) bool {
	raw, utf16, err := p.stringBytes(ref)
	switch {
	case err != nil:
		return false
	case !utf16:
		return string(raw) == s
	}
	return decodeUTF16(raw) == s
}

func (p *Bplist) stringBytes(ref Ref) (raw []byte, utf16 bool, err error) {
	typ, count, body, err := p.header(ref)
	if err != nil {
		return nil, false, err
	}
	width := uint64(1)
	switch typ {
	case bpASCII:
	case bpUTF16:
		width = 2
	default:
		return nil, false, p.bad("object %d is not a string", ref)
	}
	if count > (p.table-body)/width {
		return nil, false, p.bad("string %d runs past the offset table", ref)
	}
	return p.b[body : body+count*width], typ == bpUTF16, nil
}

// Int reads integer ref as the plist decoder does: 1, 2 and 4 bytes are
// unsigned, 8 bytes signed.
func (p *Bplist) Int(ref Ref) (int64, error) {
	typ, n, body, err := p.header(ref)
	if err != nil {
		return 0, err
	}
	if typ != bpInt || n > 3 || body+(1<<n) > p.table {
		return 0, p.bad("object %d is not an integer", ref)
	}
	return int64(readUint(p.b[body:], 1<<n)), nil
}

// Real reads real ref (4 or 8 bytes), or an integer as a real.
func (p *Bplist) Real(ref Ref) (float64, error) {
	typ, n, body, err := p.header(ref)
	if err != nil {
		return 0, err
	}
	if typ == bpInt {
		i, err := p.Int(ref)
		return float64(i), err
	}
	if typ != bpReal || (n != 2 && n != 3) || body+(1<<n) > p.table {
		return 0, p.bad("object %d is not a real", ref)
	}
	if n == 2 {
		return float64(math.Float32frombits(uint32(readUint(p.b[body:], 4)))), nil
	}
	return math.Float64frombits(readUint(p.b[body:], 8)), nil
}

// UID reads the reference ref (an NSKeyedArchiver UID).
func (p *Bplist) UID(ref Ref) (uint64, error) {
	typ, n, body, err := p.header(ref)
	if err != nil {
		return 0, err
	}
	if typ != bpUID || n > 7 || body+n+1 > p.table {
		return 0, p.bad("object %d is not a UID", ref)
	}
	return readUint(p.b[body:], n+1), nil
}

// decodeUTF16 decodes big-endian UTF-16, surrogate pairs included; an
// unpaired surrogate becomes U+FFFD, as in the plist decoder.
func decodeUTF16(raw []byte) string {
	u := make([]uint16, len(raw)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(raw[2*i:])
	}
	return string(utf16.Decode(u))
}
