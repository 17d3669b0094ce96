package wire

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestCheckPlistLimits(t *testing.T) {
	deep := strings.Repeat("<array>", maxPlistDepth+1) + strings.Repeat("</array>", maxPlistDepth+1)
	shallow := "<plist>" + strings.Repeat("<array>", 10) + "<array/>" + strings.Repeat("</array>", 10) + "</plist>"
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"deep xml", []byte(`<?xml version="1.0"?><plist>` + deep + `</plist>`), false},
		{"shallow xml", []byte(shallow), true},
		{"deep binary", deepBinaryPlist(maxPlistDepth + 5), false},
		{"fine binary", deepBinaryPlist(10), true},
		{"exploding binary", explodingBinaryPlist(40), false},
		{"small sharing binary", explodingBinaryPlist(4), true},
		{"huge object count", hugeCountBinaryPlist(), false},
		{"self reference", selfRefBinaryPlist(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkPlist(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("checkPlist = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if tt.ok {
				var v any
				if err := Decode(tt.in, &v); err != nil {
					t.Fatalf("accepted plist does not decode: %v", err)
				}
			}
		})
	}
}

// bplist builds a binary plist from raw objects (1-byte offsets and
// references), object 0 being the top.
func bplist(objects ...[]byte) []byte {
	out := []byte("bplist00")
	offs := []byte{}
	for _, o := range objects {
		offs = append(offs, byte(len(out)))
		out = append(out, o...)
	}
	table := len(out)
	out = append(out, offs...)
	trailer := make([]byte, 32)
	trailer[6], trailer[7] = 1, 1
	binary.BigEndian.PutUint64(trailer[8:], uint64(len(objects)))
	binary.BigEndian.PutUint64(trailer[24:], uint64(table))
	return append(out, trailer...)
}

// deepBinaryPlist nests single-element arrays n deep.
func deepBinaryPlist(n int) []byte {
	objs := make([][]byte, 0, n+1)
	for i := 0; i < n; i++ {
		objs = append(objs, []byte{0xA1, byte(i + 1)})
	}
	objs = append(objs, []byte{0x10, 7})
	return bplist(objs...)
}

// explodingBinaryPlist makes arrays [next, next] n levels deep: a few
// bytes that expand to 2^n values.
func explodingBinaryPlist(n int) []byte {
	objs := make([][]byte, 0, n+1)
	for i := 0; i < n; i++ {
		objs = append(objs, []byte{0xA2, byte(i + 1), byte(i + 1)})
	}
	objs = append(objs, []byte{0x10, 7})
	return bplist(objs...)
}

func hugeCountBinaryPlist() []byte {
	b := bplist([]byte{0x10, 1})
	binary.BigEndian.PutUint64(b[len(b)-32+8:], 1<<32)
	return b
}

func selfRefBinaryPlist() []byte {
	return bplist([]byte{0xA1, 0})
}

// TestCheckXMLLinear guards against a quadratic scan of unterminated tags.
func TestCheckXMLLinear(t *testing.T) {
	in := []byte("<plist>" + strings.Repeat("<dict", 2<<20))
	if err := checkPlist(in); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}
