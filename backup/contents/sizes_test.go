package contents

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// TestSizesMatchRows reads a Manifest.db of many records with Sizes and
// with Rows: each file's ID and size agree, and agree with the file. The
// records Sizes reads stay where SQLite holds them, reused from row to
// row, so a size read from the wrong row would show here.
func TestSizesMatchRows(t *testing.T) {
	var files []testFile
	want := map[string]int64{}
	for i := range 500 {
		f := testFile{domain: "HomeDomain", rel: fmt.Sprintf("Library/f%03d", i), kind: KindFile, content: make([]byte, i*37%4099)}
		files = append(files, f)
		want[f.id()] = int64(len(f.content))
	}
	files = append(files, testFile{domain: "HomeDomain", rel: "Library", kind: KindDir})
	dir := makeBackup(t, "", files)
	ctx := context.Background()
	db, err := OpenManifestDB(ctx, filepath.Join(dir, "Manifest.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fromRows := map[string]int64{}
	for r, err := range db.Rows(ctx, `WHERE flags = 1`) {
		if err != nil {
			t.Fatal(err)
		}
		size, ok := RecordSize(r.Record)
		if !ok {
			t.Fatalf("%s: no size in its record", r.FileID)
		}
		fromRows[r.FileID] = size
	}
	n := 0
	for r, err := range db.Sizes(ctx, `WHERE flags = 1`) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if !r.SizeKnown || r.Oversized || r.Size != want[r.FileID] || r.Size != fromRows[r.FileID] {
			t.Errorf("%s: %+v; the file has %d bytes, Rows says %d", r.FileID, r, want[r.FileID], fromRows[r.FileID])
		}
	}
	if n != len(want) || len(fromRows) != len(want) {
		t.Fatalf("Sizes gave %d rows, Rows %d, want %d", n, len(fromRows), len(want))
	}
}

// TestSizesOversized: a record over its bound reads as of unknown size,
// flagged, as Rows flags it.
func TestSizesOversized(t *testing.T) {
	dir := makeBackup(t, "", []testFile{{domain: "HomeDomain", rel: "a", kind: KindFile, content: []byte("abc")}})
	p := mustExec(t, filepath.Join(dir, "Manifest.db"), fmt.Sprintf(`UPDATE Files SET file = zeroblob(%d)`, MaxRecordSize+1))
	ctx := context.Background()
	db, err := OpenManifestDB(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for r, err := range db.Sizes(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		if !r.Oversized || r.SizeKnown || r.FileID == "" {
			t.Errorf("oversized record: %+v", r)
		}
	}
}
