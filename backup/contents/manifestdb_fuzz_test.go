package contents

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// manifestSeed builds a small Manifest.db, then runs extra (a hostile
// schema change, or nothing), and returns its bytes.
func manifestSeed(f *testing.F, extra string) []byte {
	f.Helper()
	p := filepath.Join(f.TempDir(), "Manifest.db")
	db, err := sql.Open("sqlite", "file:"+p)
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB)`,
		`CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB)`,
		`INSERT INTO Files VALUES ('0123456789abcdef0123456789abcdef01234567', 'HomeDomain', 'Library/a', 1, x'62706c6973743030')`,
		`INSERT INTO Files VALUES ('1123456789abcdef0123456789abcdef01234567', 'HomeDomain', 'Library', 2, NULL)`,
		extra,
	} {
		if q == "" {
			continue
		}
		if _, err := db.Exec(q); err != nil {
			f.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzManifestDB: whatever bytes a phone sends as Manifest.db, the guard
// and the bounded reader never panic, never yield a value over its bound
// or more rows than the file can hold, and end well within their time.
// Under -fuzz SQLite (a large transpiled C library) is instrumented as
// well, so each input takes about a second: few inputs, but real ones.
func FuzzManifestDB(f *testing.F) {
	f.Add(manifestSeed(f, ""))
	f.Add(manifestSeed(f, `ALTER TABLE Files RENAME TO S; CREATE VIEW Files AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n) SELECT printf('%040x', i) AS fileID, 'd' AS domain, 'p' AS relativePath, 1 AS flags, zeroblob(1048576) AS file FROM n`))
	f.Add(manifestSeed(f, `ALTER TABLE Files ADD COLUMN big BLOB GENERATED ALWAYS AS (zeroblob(268435456)) VIRTUAL`))
	f.Add(manifestSeed(f, `UPDATE Files SET file = zeroblob(300000)`))
	f.Add([]byte("SQLite format 3\x00"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "Manifest.db")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := OpenManifestDB(ctx, p)
		if err != nil {
			return
		}
		defer db.Close()
		var n int64
		rowsSeen := map[SizedRow]int{}
		for r, err := range db.Rows(ctx, "") {
			if err != nil {
				rowsSeen = nil
				break
			}
			sr := SizedRow{FileID: r.FileID, Oversized: r.Oversized}
			if r.Record != nil {
				sr.Size, sr.SizeKnown = RecordSize(r.Record)
			}
			rowsSeen[sr]++
			if n++; n > db.maxRows {
				t.Fatalf("row %d of at most %d", n, db.maxRows)
			}
			if len(r.Record) > MaxRecordSize || len(r.FileID) > maxFileIDSize || len(r.Domain) > maxPathSize || len(r.RelativePath) > maxPathSize {
				t.Fatalf("a value over its bound: record %d, fileID %d, domain %d, path %d bytes", len(r.Record), len(r.FileID), len(r.Domain), len(r.RelativePath))
			}
		}
		// Sizes reads the same rows, each record in place.
		for r, err := range db.Sizes(ctx, "") {
			if err != nil || rowsSeen == nil {
				break
			}
			if rowsSeen[r]--; rowsSeen[r] < 0 {
				t.Fatalf("Sizes gave %+v, which Rows did not", r)
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("reading %d bytes of Manifest.db took 30 s", len(data))
		}
	})
}
