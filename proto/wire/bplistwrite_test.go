package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"howett.net/plist"
)

// decodeHowett reads a plist with the plist library, the reference the
// builder's output is held to.
func decodeHowett(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if _, err := plist.Unmarshal(b, &v); err != nil {
		t.Fatalf("the plist library cannot read the builder's plist: %v\n% x", err, b)
	}
	return v
}

// sameValue compares two decoded plists; dates within a microsecond,
// because the plist library turns a date into nanoseconds through a
// float and loses the last digits.
func sameValue(a, b any) bool {
	switch a := a.(type) {
	case time.Time:
		bt, ok := b.(time.Time)
		d := a.Sub(bt)
		return ok && d < time.Microsecond && d > -time.Microsecond
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return false
		}
		for i := range a {
			if !sameValue(a[i], bs[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			if w, ok := bm[k]; !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []byte:
		bb, ok := b.([]byte)
		return ok && string(a) == string(bb)
	case float64:
		bf, ok := b.(float64)
		return ok && (a == bf || math.IsNaN(a) && math.IsNaN(bf))
	}
	return a == b
}

// checkAgainstHowett encodes v with the builder and with the plist
// library, and requires the two to decode to the same value.
func checkAgainstHowett(t testing.TB, v any) []byte {
	t.Helper()
	var b BplistBuilder
	ours, err := b.Encode(nil, v)
	if err != nil {
		t.Fatalf("builder: %v", err)
	}
	if _, err := OpenBplist(ours); err != nil {
		t.Fatalf("our reader refuses the builder's plist: %v", err)
	}
	got := decodeHowett(t, ours)
	theirs, err := plist.Marshal(v, plist.BinaryFormat)
	if err != nil {
		// The library cannot write some values (NaN breaks its
		// uniquing); that it reads ours is what is left to check.
		t.Logf("plist library cannot encode it: %v", err)
		return ours
	}
	want := decodeHowett(t, theirs)
	if !sameValue(got, want) {
		t.Fatalf("builder's plist decodes to\n%#v\nthe library's to\n%#v", got, want)
	}
	return ours
}

func TestBuilderAgainstHowett(t *testing.T) {
	long := strings.Repeat("x", 300)
	many := make([]any, 20)
	for i := range many {
		many[i] = fmt.Sprint("item", i%7)
	}
	date := time.Date(2026, 12, 6, 3, 4, 5, 123456000, time.UTC)
	cases := []struct {
		name string
		v    any
	}{
		{"small ints", []any{0, 1, 255, 256, 65535, 65536, uint32(math.MaxUint32), int64(math.MaxUint32) + 1}},
		{"negative ints", []any{-1, int8(-128), int64(math.MinInt64), -65536}},
		{"uint64 past int64", []any{uint64(math.MaxUint64), uint64(1) << 63, uint64(math.MaxInt64)}},
		{"reals", []any{0.0, -1.5, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(-1)}},
		{"bools", []any{true, false}},
		{"strings", []any{"", "ascii", long, "é", "日本語", "emoji 😀 pair", "nul\x00inside"}},
		{"invalid utf-8", []any{"a\xffb"}},
		{"data", []any{[]byte{}, []byte{0, 1, 2}, []byte(long)}},
		{"dates", []any{date, time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), date.In(time.FixedZone("x", 3600))}},
		{"fifteen and more entries", many},
		{"empty containers", []any{[]any{}, map[string]any{}}},
		{"strings array", []string{"a", "b", "a"}},
		{"nested", map[string]any{
			"DLFileType": "DLFileTypeRegular", "DLFileSize": uint64(42),
			"Inner": map[string]any{"List": []any{map[string]any{"k": 1}, "k"}},
		}},
		{"a DeviceLink message", []any{"DLMessageStatusResponse", int64(0), "___EmptyParameterString___", map[string]any{}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkAgainstHowett(t, c.v) })
	}
}

// TestBuilderReferenceWidths crosses the object counts where references
// need 2 and then 4 bytes.
func TestBuilderReferenceWidths(t *testing.T) {
	for _, n := range []int{254, 255, 256, 65534, 65535, 70000} {
		items := make([]any, n)
		for i := range items {
			items[i] = i
		}
		b := checkAgainstHowett(t, items)
		tr := b[len(b)-32:]
		want := byte(intSize(uint64(n))) // n items and the array
		if tr[7] != want {
			t.Errorf("%d objects: reference size %d, want %d", n+1, tr[7], want)
		}
	}
}

// TestBuilderWritesStringsOnce: a listing repeats its three keys and its
// file types in every entry; each is written once.
func TestBuilderWritesStringsOnce(t *testing.T) {
	entry := func() any { return map[string]any{"DLFileType": "DLFileTypeRegular"} }
	var b BplistBuilder
	out, err := b.Encode(nil, map[string]any{"a": entry(), "b": entry(), "c": entry()})
	if err != nil {
		t.Fatal(err)
	}
	// The top dictionary, its 3 keys and 3 values, one key and one type.
	if n := binary.BigEndian.Uint64(out[len(out)-24:]); n != 9 {
		t.Errorf("%d objects, want 9", n)
	}
	if got := strings.Count(string(out), "DLFileTypeRegular"); got != 1 {
		t.Errorf("the file type is written %d times", got)
	}
}

func TestBuilderRefusesWhatItCannotWrite(t *testing.T) {
	var b BplistBuilder
	for _, v := range []any{nil, struct{ A int }{1}, plist.UID(3), float32(1), map[string]int{"a": 1}} {
		if _, err := b.Encode(nil, []any{"ok", v}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%T: err %v, want ErrUnsupported", v, err)
		}
	}
	// Encode falls back to the plist library for them.
	out, err := Encode(map[string]any{"UID": plist.UID(3)}, Binary)
	if err != nil || decodeHowett(t, out).(map[string]any)["UID"] != plist.UID(3) {
		t.Errorf("fallback: %v", err)
	}
}

// FuzzBplistBuilder builds a value from the input and holds the
// builder's plist to the plist library's, decoded.
func FuzzBplistBuilder(f *testing.F) {
	f.Add([]byte{6, 3, 1, 2, 'a', 0, 9, 7, 2, 5, 5})
	f.Add([]byte{7, 20, 3, 4, 'x', 'y', 0xc3, 0xa9, 1, 255, 255, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		g := valueGen{data: data}
		checkAgainstHowett(t, g.value(0))
	})
}

// valueGen turns fuzz bytes into a plist value.
type valueGen struct {
	data []byte
	i    int
}

func (g *valueGen) byte() byte {
	if g.i >= len(g.data) {
		return 0
	}
	g.i++
	return g.data[g.i-1]
}

func (g *valueGen) bytes(n int) []byte {
	n = min(n, len(g.data)-g.i)
	out := g.data[g.i : g.i+n]
	g.i += n
	return out
}

func (g *valueGen) value(depth int) any {
	kind := g.byte() % 9
	if depth > 4 && kind >= 6 {
		kind = 0
	}
	switch kind {
	case 0:
		return uint64(g.byte()) << (g.byte() % 64)
	case 1:
		return -int64(g.byte())<<(g.byte()%56) - 1
	case 2:
		return string(g.bytes(int(g.byte())))
	case 3:
		return g.bytes(int(g.byte()))
	case 4:
		return g.byte()%2 == 0
	case 5:
		secs := int64(binary.BigEndian.Uint32(append(g.bytes(4), 0, 0, 0, 0)))
		return time.Unix(secs, int64(g.byte())*1000).UTC()
	case 6:
		n := int(g.byte() % 20)
		out := make([]any, n)
		for i := range out {
			out[i] = g.value(depth + 1)
		}
		return out
	case 7:
		n := int(g.byte() % 20)
		out := make(map[string]any, n)
		for range n {
			out[string(g.bytes(int(g.byte()%8)))] = g.value(depth + 1)
		}
		return out
	}
	return math.Float64frombits(binary.BigEndian.Uint64(append(g.bytes(8), 0, 0, 0, 0, 0, 0, 0, 0)))
}
