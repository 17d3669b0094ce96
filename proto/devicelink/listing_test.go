package devicelink

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/wire"
)

// TestListingTravels sends a Listing in a status response, binary and
// XML, and reads back the dictionary of dictionaries a phone gets.
func TestListingTravels(t *testing.T) {
	date := time.Date(2026, 12, 6, 3, 0, 0, 0, time.FixedZone("CET", 3600))
	l := Listing{
		{Name: "00", Type: FileTypeDirectory, Size: 4096, ModTime: date},
		{Name: "00a1b2", Type: FileTypeRegular, Size: 1 << 33, ModTime: date.Add(time.Second)},
		{Name: "fifo", Type: FileTypeUnknown, ModTime: date},
	}
	want := map[string]any{}
	for _, e := range l {
		want[e.Name] = map[string]any{"DLFileType": e.Type, "DLFileSize": e.Size, "DLFileModificationDate": e.ModTime.UTC()}
	}
	for _, f := range []wire.Format{wire.Binary, wire.XML} {
		var buf bytes.Buffer
		c := NewConn(&buf)
		c.Format = f
		if err := c.SendStatusResponse(0, "", l); err != nil {
			t.Fatal(err)
		}
		got, err := NewConn(&buf).ReadStatusResponse()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Payload, want) {
			t.Errorf("format %d: payload\n%#v\nwant\n%#v", f, got.Payload, want)
		}
	}
}

func TestEntryOf(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, typ string
		size      uint64
	}{{"f", FileTypeRegular, 5}, {"link", FileTypeUnknown, 1}, {".", FileTypeDirectory, 0}}
	for _, c := range cases {
		fi, err := os.Lstat(filepath.Join(dir, c.name))
		if err != nil {
			t.Fatal(err)
		}
		e := EntryOf(c.name, fi)
		if e.Type != c.typ || (c.typ != FileTypeDirectory && e.Size != c.size) || !e.ModTime.Equal(fi.ModTime()) {
			t.Errorf("%s: %+v", c.name, e)
		}
	}
}

// TestConnReusesItsEncoder: messages in a row, one over the memory a
// Conn keeps, each read back whole.
func TestConnReusesItsEncoder(t *testing.T) {
	big := make(Listing, 40000)
	for i := range big {
		big[i] = DirEntry{Name: fmt.Sprintf("%040x", i), Type: FileTypeRegular, Size: uint64(i)}
	}
	small := Listing{{Name: "a", Type: FileTypeDirectory}}
	var buf bytes.Buffer
	c := NewConn(&buf)
	sent := []Listing{small, big, small, big[:100]}
	for _, l := range sent {
		if err := c.SendStatusResponse(0, "", l); err != nil {
			t.Fatal(err)
		}
	}
	r := NewConn(&buf)
	r.MaxMessage = 64 << 20
	for i, l := range sent {
		got, err := r.ReadStatusResponse()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		m, _ := got.Payload.(map[string]any)
		if len(m) != len(l) {
			t.Fatalf("message %d: %d entries, want %d", i, len(m), len(l))
		}
		for _, e := range l {
			if d, _ := m[e.Name].(map[string]any); d["DLFileSize"] != e.Size || d["DLFileType"] != e.Type {
				t.Fatalf("message %d: %s is %v", i, e.Name, m[e.Name])
			}
		}
	}
}
