package wire_test

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"howett.net/plist"

	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim/simtest"
)

// TestBuilderReadByLibplist has Debian's plistutil (libplist, the parser
// libimobiledevice and so idevicebackup2 use) read the builder's plists
// and write them back as XML, which must hold the same values. The
// plists cross every width the format has: counts that follow their
// marker, 2- and 4-byte references, 16-byte integers, UTF-16 strings.
func TestBuilderReadByLibplist(t *testing.T) {
	plistutil := simtest.RequireTool(t, "plistutil")
	many := make([]any, 70000)
	for i := range many {
		many[i] = uint64(i % 300)
	}
	date := time.Date(2026, 12, 6, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name string
		v    any
	}{
		{"a listing", map[string]any{
			"00":     map[string]any{"DLFileType": "DLFileTypeDirectory", "DLFileSize": uint64(4096), "DLFileModificationDate": date},
			"0a1b2c": map[string]any{"DLFileType": "DLFileTypeRegular", "DLFileSize": uint64(1) << 40, "DLFileModificationDate": date},
		}},
		{"numbers", []any{uint64(0), uint64(255), uint64(65536), int64(-1), int64(math.MinInt64), uint64(math.MaxInt64), uint64(math.MaxUint64), 1.25, true, false}},
		{"strings", []any{"", strings.Repeat("long ", 40), "Ünïcödé", "😀 and 日本", []byte("data bytes over fifteen")}},
		{"70 000 objects", many},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b wire.BplistBuilder
			out, err := b.Encode(nil, c.v)
			if err != nil {
				t.Fatal(err)
			}
			in, xml := filepath.Join(dir, "in.plist"), filepath.Join(dir, "out.xml")
			if err := os.WriteFile(in, out, 0o600); err != nil {
				t.Fatal(err)
			}
			if msg, err := exec.Command(plistutil, "-i", in, "-o", xml, "-f", "xml").CombinedOutput(); err != nil {
				t.Fatalf("plistutil refuses the builder's plist: %v: %s", err, msg)
			}
			back, err := os.ReadFile(xml)
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			if _, err := plist.Unmarshal(back, &got); err != nil {
				t.Fatalf("plistutil's XML: %v", err)
			}
			// The value as the plist library reads its own binary plist.
			ref, err := plist.Marshal(c.v, plist.BinaryFormat)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := plist.Unmarshal(ref, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normal(got), normal(want)) {
				t.Fatalf("plistutil read\n%.500v\nwant\n%.500v", got, want)
			}
		})
	}
}

// normal makes a decoded plist comparable across the XML and binary
// decoders: numbers as int64 or uint64 by value, dates in UTC.
func normal(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i := range v {
			out[i] = normal(v[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normal(e)
		}
		return out
	case time.Time:
		return v.UTC()
	case int64:
		if v >= 0 {
			return uint64(v)
		}
	}
	return v
}
