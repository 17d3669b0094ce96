package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// BplistBuilder writes a binary plist ("bplist00") object by object,
// without reflection: a caller adds the leaves, then the containers that
// hold them, and Finish lays the objects out. It exists for the large
// answers a host sends, a directory listing of thousands of entries,
// where a map per entry and the plist library's reflection were most of
// the garbage of a backup.
//
// Facts of the format it follows (the same as Bplist's): objects are
// written in the order of their references, each behind a marker byte;
// a container holds references of the smallest width that addresses
// every object; the offset table, whose entries are wide enough to
// address the table itself (CoreFoundation and the plist library check
// that), and a 32-byte trailer end the plist. Equal strings are written
// once, as Apple's writer does.
type BplistBuilder struct {
	objs []bpObject
	data []byte // the leaves' encodings, end to end
	refs []Ref  // the containers' references, end to end
	strs map[string]Ref
	offs []uint64 // Finish's scratch
}

// bpObject is one object: a leaf's bytes in data, or a container's
// references in refs (a dictionary's keys, then its values).
type bpObject struct {
	marker byte // bpArr or bpDictT for a container, 0 for a leaf
	start  int
	n      int
}

// epochApple is the zero of plist dates, 2001-01-01 UTC, in Unix seconds.
const epochApple = 978307200

// ErrUnsupported is returned by AppendValue for a Go value it has no
// plist object for.
var ErrUnsupported = errors.New("no binary plist encoding for this value")

// Reset empties the builder and keeps its memory.
func (b *BplistBuilder) Reset() {
	b.objs, b.data, b.refs = b.objs[:0], b.data[:0], b.refs[:0]
	clear(b.strs)
}

func (b *BplistBuilder) leaf(enc []byte) Ref {
	b.objs = append(b.objs, bpObject{start: len(b.data), n: len(enc)})
	b.data = append(b.data, enc...)
	return Ref(len(b.objs) - 1)
}

// leafStart begins a leaf written straight into data; leafEnd closes it.
func (b *BplistBuilder) leafStart() int { return len(b.data) }

func (b *BplistBuilder) leafEnd(start int) Ref {
	b.objs = append(b.objs, bpObject{start: start, n: len(b.data) - start})
	return Ref(len(b.objs) - 1)
}

// Bool adds true or false.
func (b *BplistBuilder) Bool(v bool) Ref {
	if v {
		return b.leaf([]byte{0x09})
	}
	return b.leaf([]byte{0x08})
}

// Int adds a signed integer. Negative ones take 8 bytes, as the format
// reads only 8-byte integers as signed.
func (b *BplistBuilder) Int(v int64) Ref {
	if v < 0 {
		s := b.leafStart()
		b.data = binary.BigEndian.AppendUint64(append(b.data, bpInt<<4|3), uint64(v))
		return b.leafEnd(s)
	}
	return b.Uint(uint64(v))
}

// Uint adds an unsigned integer in the fewest bytes; past the signed
// range it takes 16, the high 8 zero, as Apple's writer does.
func (b *BplistBuilder) Uint(v uint64) Ref {
	s := b.leafStart()
	b.data = appendUint(b.data, v)
	return b.leafEnd(s)
}

func appendUint(dst []byte, v uint64) []byte {
	switch {
	case v <= math.MaxUint8:
		return append(dst, bpInt<<4, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, bpInt<<4|1), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, bpInt<<4|2), uint32(v))
	case v <= math.MaxInt64:
		return binary.BigEndian.AppendUint64(append(dst, bpInt<<4|3), v)
	}
	dst = binary.BigEndian.AppendUint64(append(dst, bpInt<<4|4), 0)
	return binary.BigEndian.AppendUint64(dst, v)
}

// Real adds a double.
func (b *BplistBuilder) Real(v float64) Ref {
	s := b.leafStart()
	b.data = binary.BigEndian.AppendUint64(append(b.data, bpReal<<4|3), math.Float64bits(v))
	return b.leafEnd(s)
}

// Date adds a date: a double of seconds since 2001-01-01 UTC.
func (b *BplistBuilder) Date(t time.Time) Ref {
	secs := float64(t.Unix()-epochApple) + float64(t.Nanosecond())/1e9
	s := b.leafStart()
	b.data = binary.BigEndian.AppendUint64(append(b.data, 0x33), math.Float64bits(secs))
	return b.leafEnd(s)
}

// Data adds a byte string.
func (b *BplistBuilder) Data(p []byte) Ref {
	s := b.leafStart()
	b.data = append(appendMarker(b.data, bpData, uint64(len(p))), p...)
	return b.leafEnd(s)
}

// String adds a string, ASCII when it is, UTF-16 otherwise; a string
// added before is not written again.
func (b *BplistBuilder) String(v string) Ref {
	if r, ok := b.strs[v]; ok {
		return r
	}
	s := b.leafStart()
	if isASCII(v) {
		b.data = append(appendMarker(b.data, bpASCII, uint64(len(v))), v...)
	} else {
		b.data = appendUTF16(b.data, v)
	}
	r := b.leafEnd(s)
	if b.strs == nil {
		b.strs = make(map[string]Ref)
	}
	b.strs[v] = r
	return r
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendUTF16 writes s as big-endian UTF-16; bytes that are not UTF-8
// become U+FFFD, as in the plist libraries.
func appendUTF16(dst []byte, s string) []byte {
	units := 0
	for _, r := range s {
		units += utf16.RuneLen(r)
	}
	dst = appendMarker(dst, bpUTF16, uint64(units))
	for _, r := range s {
		if utf16.RuneLen(r) == 2 {
			hi, lo := utf16.EncodeRune(r)
			dst = binary.BigEndian.AppendUint16(dst, uint16(hi))
			r = lo
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(r))
	}
	return dst
}

// appendMarker writes an object's marker with its count: in the low
// nibble below 15, else as an integer object behind it.
func appendMarker(dst []byte, typ byte, count uint64) []byte {
	if count < countFollows {
		return append(dst, typ<<4|byte(count))
	}
	return appendUint(append(dst, typ<<4|countFollows), count)
}

// Array adds an array of objects added before.
func (b *BplistBuilder) Array(items []Ref) Ref {
	b.objs = append(b.objs, bpObject{marker: bpArr, start: len(b.refs), n: len(items)})
	b.refs = append(b.refs, items...)
	return Ref(len(b.objs) - 1)
}

// Dict adds a dictionary of keys and values added before; keys[i] names
// values[i].
func (b *BplistBuilder) Dict(keys, values []Ref) Ref {
	if len(keys) != len(values) {
		panic("wire: BplistBuilder.Dict with unequal keys and values")
	}
	b.objs = append(b.objs, bpObject{marker: bpDictT, start: len(b.refs), n: len(keys)})
	b.refs = append(append(b.refs, keys...), values...)
	return Ref(len(b.objs) - 1)
}

// Encode appends the binary plist of v (see AppendValue) to dst, after
// emptying the builder.
func (b *BplistBuilder) Encode(dst []byte, v any) ([]byte, error) {
	b.Reset()
	top, err := b.AppendValue(v)
	if err != nil {
		return dst, err
	}
	return b.Finish(dst, top), nil
}

// Finish appends the plist whose top object is top to dst.
func (b *BplistBuilder) Finish(dst []byte, top Ref) []byte {
	refSize := intSize(uint64(len(b.objs) - 1))
	start := len(dst)
	dst = append(dst, bplistHeader...)
	b.offs = slices.Grow(b.offs[:0], len(b.objs))
	for _, o := range b.objs {
		b.offs = append(b.offs, uint64(len(dst)-start))
		if o.marker == 0 {
			dst = append(dst, b.data[o.start:o.start+o.n]...)
			continue
		}
		total := o.n
		if o.marker == bpDictT {
			total *= 2
		}
		dst = appendMarker(dst, o.marker, uint64(o.n))
		for _, r := range b.refs[o.start : o.start+total] {
			dst = appendSized(dst, uint64(r), refSize)
		}
	}
	table := uint64(len(dst) - start)
	// Readers (CoreFoundation's, the plist library's) require the offset
	// width to address the offset table itself, not only the last object.
	offSize := intSize(table)
	for _, off := range b.offs {
		dst = appendSized(dst, off, offSize)
	}
	dst = append(dst, 0, 0, 0, 0, 0, 0, byte(offSize), byte(refSize))
	dst = binary.BigEndian.AppendUint64(dst, uint64(len(b.objs)))
	dst = binary.BigEndian.AppendUint64(dst, uint64(top))
	return binary.BigEndian.AppendUint64(dst, table)
}

// intSize is the fewest of 1, 2, 4 or 8 bytes that hold v.
func intSize(v uint64) uint64 {
	switch {
	case v <= math.MaxUint8:
		return 1
	case v <= math.MaxUint16:
		return 2
	case v <= math.MaxUint32:
		return 4
	}
	return 8
}

func appendSized(dst []byte, v, size uint64) []byte {
	switch size {
	case 1:
		return append(dst, byte(v))
	case 2:
		return binary.BigEndian.AppendUint16(dst, uint16(v))
	case 4:
		return binary.BigEndian.AppendUint32(dst, uint32(v))
	}
	return binary.BigEndian.AppendUint64(dst, v)
}

// BplistAppender is a value that adds itself to a BplistBuilder, for a
// payload that would otherwise have to become maps first.
type BplistAppender interface {
	AppendBplist(b *BplistBuilder) (Ref, error)
}

// AppendValue adds a Go value built of the types a plist decodes to:
// bool, integers, float64, string, []byte, time.Time, []any, []string,
// map[string]any (its keys sorted, for the same bytes each time) and
// BplistAppender. Any other value gives an error wrapping ErrUnsupported.
func (b *BplistBuilder) AppendValue(v any) (Ref, error) {
	switch v := v.(type) {
	case string:
		return b.String(v), nil
	case bool:
		return b.Bool(v), nil
	case []byte:
		return b.Data(v), nil
	case time.Time:
		return b.Date(v), nil
	case float64:
		return b.Real(v), nil
	case []any:
		return b.appendArray(len(v), func(i int) any { return v[i] })
	case []string:
		return b.appendArray(len(v), func(i int) any { return v[i] })
	case map[string]any:
		return b.appendMap(v)
	case BplistAppender:
		return v.AppendBplist(b)
	case int:
		return b.Int(int64(v)), nil
	case int64:
		return b.Int(v), nil
	case int32:
		return b.Int(int64(v)), nil
	case int16:
		return b.Int(int64(v)), nil
	case int8:
		return b.Int(int64(v)), nil
	case uint:
		return b.Uint(uint64(v)), nil
	case uint64:
		return b.Uint(v), nil
	case uint32:
		return b.Uint(uint64(v)), nil
	case uint16:
		return b.Uint(uint64(v)), nil
	case uint8:
		return b.Uint(uint64(v)), nil
	}
	return 0, fmt.Errorf("%w: %T", ErrUnsupported, v)
}

func (b *BplistBuilder) appendArray(n int, item func(int) any) (Ref, error) {
	refs := make([]Ref, n)
	for i := range refs {
		r, err := b.AppendValue(item(i))
		if err != nil {
			return 0, err
		}
		refs[i] = r
	}
	return b.Array(refs), nil
}

func (b *BplistBuilder) appendMap(m map[string]any) (Ref, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	refs := make([]Ref, 2*len(keys))
	for i, k := range keys {
		refs[i] = b.String(k)
		r, err := b.AppendValue(m[k])
		if err != nil {
			return 0, err
		}
		refs[len(keys)+i] = r
	}
	return b.Dict(refs[:len(keys)], refs[len(keys):]), nil
}
