package mbfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"howett.net/plist"
)

func TestSizeAsDecode(t *testing.T) {
	for name, f := range samples() {
		t.Run(name, func(t *testing.T) {
			b, err := Encode(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Size(b)
			if err != nil || got != f.Size {
				t.Fatalf("Size = %d, %v; want %d", got, err, f.Size)
			}
		})
	}
}

// TestSizeOfOtherShapes covers what a phone may write that our Encode
// does not: the root elsewhere than $objects[1], keys stored as UTF-16,
// a repeated key, and every width of integer.
func TestSizeOfOtherShapes(t *testing.T) {
	class := map[string]any{"$classname": "MBFile", "$classes": []any{"MBFile", "NSObject"}}
	rec := func(size any) map[string]any {
		return map[string]any{"Size": size, "Mode": 0o100644, "$class": plist.UID(2)}
	}
	utf16 := encodeRaw(t, []any{"$null", rec(uint64(70000)), class}, plist.UID(1))
	// "Size" as ASCII 0x54 "Size" becomes UTF-16 0x64 "\0S\0i\0z\0e" in a
	// copy with the same layout but for that string object.
	utf16 = asUTF16Key(t, utf16, "Size")
	cases := []struct {
		name string
		blob []byte
		want int64
	}{
		{"root at 3", encodeRaw(t, []any{"$null", "x", class, rec(5)}, plist.UID(3)), 5},
		{"1-byte size", encodeRaw(t, []any{"$null", rec(uint64(200)), class}, plist.UID(1)), 200},
		{"2-byte size", encodeRaw(t, []any{"$null", rec(uint64(60000)), class}, plist.UID(1)), 60000},
		{"4-byte size", encodeRaw(t, []any{"$null", rec(uint64(1 << 31)), class}, plist.UID(1)), 1 << 31},
		{"8-byte size", encodeRaw(t, []any{"$null", rec(uint64(1 << 40)), class}, plist.UID(1)), 1 << 40},
		{"UTF-16 key", utf16, 70000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Size(c.blob)
			if err != nil || got != c.want {
				t.Fatalf("Size = %d, %v; want %d", got, err, c.want)
			}
			if d, err := Decode(c.blob); err != nil || d.Size != c.want {
				t.Fatalf("Decode disagrees: %d, %v", d.Size, err)
			}
		})
	}
}

// asUTF16Key rewrites the ASCII string object key of a binary plist as
// UTF-16: the new object goes where the offset table was, the table
// (pointed at it) and the trailer follow.
func asUTF16Key(t *testing.T, b []byte, key string) []byte {
	t.Helper()
	trailer := b[len(b)-32:]
	offSize := int(trailer[6])
	n := int(binary.BigEndian.Uint64(trailer[8:]))
	table := int(binary.BigEndian.Uint64(trailer[24:]))
	old := append([]byte{byte(0x50 | len(key))}, key...)
	for ref := range n {
		var off int
		for _, c := range b[table+ref*offSize : table+(ref+1)*offSize] {
			off = off<<8 | int(c)
		}
		if !bytes.HasPrefix(b[off:], old) {
			continue
		}
		out := append([]byte{}, b[:table]...)
		at := len(out)
		if offSize < 2 && at > 0xff {
			t.Skip("offsets too narrow for the rewrite")
		}
		out = append(out, byte(0x60|len(key)))
		for _, c := range []byte(key) {
			out = append(out, 0, c)
		}
		newTable := len(out)
		out = append(out, b[table:len(b)-32]...)
		for i := range offSize {
			out[newTable+ref*offSize+i] = byte(at >> (8 * (offSize - 1 - i)))
		}
		tr := append([]byte{}, trailer...)
		binary.BigEndian.PutUint64(tr[24:], uint64(newTable))
		return append(out, tr...)
	}
	t.Fatalf("no string %q", key)
	return nil
}

func TestSizeRejects(t *testing.T) {
	class := map[string]any{"$classname": "MBFile"}
	rec := func(k string, v any) map[string]any {
		m := map[string]any{"Size": 1, "Mode": 0o100644, "$class": plist.UID(2)}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	good := encodeRaw(t, []any{"$null", rec("", nil), class}, plist.UID(1))
	cases := map[string][]byte{
		"empty":             nil,
		"XML":               []byte("<plist><dict/></plist>"),
		"truncated":         good[:len(good)-1],
		"trailer only":      append([]byte("bplist00"), make([]byte, 32)...),
		"too large":         append([]byte("bplist00"), make([]byte, MaxArchive)...),
		"root out of range": encodeRaw(t, []any{"$null", rec("", nil), class}, plist.UID(9)),
		"root not a dict":   encodeRaw(t, []any{"$null", "x", class}, plist.UID(1)),
		"root not a UID":    encodeRaw(t, []any{"$null", rec("", nil), class}, 1),
		"no Size":           encodeRaw(t, []any{"$null", rec("Size", nil), class}, plist.UID(1)),
		"Size a string":     encodeRaw(t, []any{"$null", rec("Size", "1"), class}, plist.UID(1)),
		"negative Size":     encodeRaw(t, []any{"$null", rec("Size", -1), class}, plist.UID(1)),
	}
	for name, blob := range cases {
		t.Run(name, func(t *testing.T) {
			if n, err := Size(blob); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Size = %d, %v; want ErrMalformed", n, err)
			}
		})
	}
}

// FuzzSize checks Size against Decode: never a panic, and whatever binary
// plist Decode reads, Size reads to the same Size.
func FuzzSize(f *testing.F) {
	for _, s := range samples() {
		b, err := Encode(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("bplist00"))
	f.Fuzz(func(t *testing.T, blob []byte) {
		n, err := Size(blob)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		d, derr := Decode(blob)
		if derr != nil || !bytes.HasPrefix(blob, []byte("bplist00")) {
			return
		}
		if err != nil || n != d.Size {
			t.Fatalf("Size = %d, %v; Decode reads %d", n, err, d.Size)
		}
	})
}
