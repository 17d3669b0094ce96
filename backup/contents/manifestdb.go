package contents

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go

	"github.com/backupd/backupd/proto/mbfile"
)

// A Manifest.db comes from the phone, so its schema is the phone's to
// choose. A view named Files can recurse and never end; a generated column
// or a view can make every value a zeroblob of hundreds of megabytes; a
// virtual table can be anything its module makes of it. Every reader of a
// backup (commit-time verify, backupd verify, files, extract) opens it
// through OpenManifestDB, which accepts Files only as an ordinary table,
// and reads rows through ManifestDB.Rows, which bounds each value and the
// number of rows. An ordinary table's rows and values are stored in the
// file, so the work is then bounded by the file's size, which is what the
// phone actually sent.

// Bounds on what one row of Files may hold. Real records are a few
// hundred bytes (an MBFile archive); paths are at most a few hundred.
const (
	// MaxRecordSize bounds Files.file, the MBFile record.
	MaxRecordSize = 256 << 10
	// maxFileIDSize is longer than any fileID (40 hex digits), so that
	// a slightly wrong one is still named in a problem.
	maxFileIDSize = 256
	// maxPathSize bounds domain and relativePath: the longest path a
	// device may name (backup.DefaultMaxPathLen).
	maxPathSize = 4096
	// minRowBytes is less than the smallest row of Files an ordinary
	// table can store (a record header, a rowid and a 40-byte fileID),
	// so the file's size over it bounds the rows.
	minRowBytes = 32
	// slackRows keeps the bound generous for tiny databases.
	slackRows = 1024
)

// ErrNotManifest is wrapped when Manifest.db's schema is not one a phone
// writes: Files missing, or not an ordinary table.
var ErrNotManifest = errors.New("not a backup manifest")

// ErrTooManyRows is wrapped when Files yields more rows than the file can
// hold.
var ErrTooManyRows = errors.New("more rows than the file can hold")

// ManifestDB is an open Manifest.db whose schema passed the guard.
type ManifestDB struct {
	db      *sql.DB
	maxRows int64
}

// OpenManifestDB opens the Manifest.db at path read-only and immutable
// (no journal, no lock file beside it), with trusted_schema off so that
// functions the schema names do not run, and checks that Files is an
// ordinary table without generated columns.
func OpenManifestDB(ctx context.Context, path string) (*ManifestDB, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("contents: Manifest.db: %w", err)
	}
	db, err := sql.Open("sqlite", manifestURI(path))
	if err != nil {
		return nil, fmt.Errorf("contents: Manifest.db: %w", err)
	}
	db.SetMaxOpenConns(1)
	if err := checkSchema(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("contents: Manifest.db: %w", err)
	}
	return &ManifestDB{db: db, maxRows: fi.Size()/minRowBytes + slackRows}, nil
}

// manifestURI opens path read-only and immutable: SQLite then takes no
// locks and creates no -journal, -wal or -shm file. Its page cache is
// kept to 256 KiB (SQLite's default is 2 MiB): every reader here goes
// through Files in one pass, and the cache is most of what the daemon's
// verify at commit adds to its memory.
func manifestURI(path string) string {
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // C:/... on Windows
	}
	u := url.URL{Scheme: "file", Path: p, RawQuery: "mode=ro&immutable=1&_pragma=trusted_schema(0)&_pragma=query_only(1)&_pragma=cache_size(-256)"}
	return u.String()
}

func checkSchema(ctx context.Context, db *sql.DB) error {
	var typ, ddl sql.NullString
	err := db.QueryRowContext(ctx, `SELECT type, sql FROM sqlite_schema WHERE name = 'Files' COLLATE NOCASE`).Scan(&typ, &ddl)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: it has no Files table", ErrNotManifest)
	}
	if err != nil {
		return err
	}
	if typ.String != "table" {
		return fmt.Errorf("%w: Files is a %s, not a table", ErrNotManifest, typ.String)
	}
	if f := strings.Fields(strings.ToUpper(ddl.String)); len(f) < 2 || f[1] != "TABLE" {
		return fmt.Errorf("%w: Files is a virtual table", ErrNotManifest)
	}
	// hidden is 2 or 3 for a generated column, whose value is computed
	// on every read.
	var generated int
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_xinfo('Files') WHERE hidden <> 0`).Scan(&generated)
	if err != nil {
		return err
	}
	if generated > 0 {
		return fmt.Errorf("%w: Files has generated columns", ErrNotManifest)
	}
	return nil
}

// Close closes the database.
func (m *ManifestDB) Close() error { return m.db.Close() }

// Row is one row of Files, each value bounded. A value over its bound
// reads as empty (nil for the record) with Oversized set.
type Row struct {
	FileID, Domain, RelativePath string
	Flags                        int64
	Record                       []byte
	Oversized                    bool
}

// The columns of Files, each read only when it is within its bound:
// octet_length is answered from the record's header, without loading the
// value, so an oversized one costs nothing. oversizedColumn says whether
// any of them was over.
var (
	idColumn        = fmt.Sprintf(`iif(octet_length(fileID) <= %d, fileID, NULL)`, maxFileIDSize)
	domainColumn    = fmt.Sprintf(`iif(octet_length(domain) <= %d, domain, NULL)`, maxPathSize)
	pathColumn      = fmt.Sprintf(`iif(octet_length(relativePath) <= %d, relativePath, NULL)`, maxPathSize)
	recordColumn    = fmt.Sprintf(`iif(octet_length(file) <= %d, file, NULL)`, MaxRecordSize)
	oversizedColumn = fmt.Sprintf(`coalesce(octet_length(fileID) > %[1]d OR octet_length(domain) > %[2]d OR
		octet_length(relativePath) > %[2]d OR octet_length(file) > %[3]d, 0)`, maxFileIDSize, maxPathSize, MaxRecordSize)
)

// rowsQuery reads what Row holds.
var rowsQuery = "SELECT " + strings.Join([]string{idColumn, domainColumn, pathColumn, "flags", recordColumn, oversizedColumn}, ", ") + " FROM Files"

// Rows streams the rows of Files; tail ("WHERE ...", "ORDER BY ...")
// and args follow the FROM clause. More rows than the file can hold end
// the stream with an error wrapping ErrTooManyRows.
func (m *ManifestDB) Rows(ctx context.Context, tail string, args ...any) iter.Seq2[Row, error] {
	return query(ctx, m, rowsQuery+" "+tail, args, scanRow)
}

// SizedRow is a row of Files as a check of the files on disk needs it:
// the file's ID and the size its record gives.
type SizedRow struct {
	FileID string
	// Size is the record's Size; SizeKnown is false when the record
	// cannot be read.
	Size      int64
	SizeKnown bool
	// Oversized is set when the ID or the record is over its bound, as
	// in Row (the ID then reads as empty, the size as unknown).
	Oversized bool
}

// sizesQuery reads what SizedRow holds.
var sizesQuery = "SELECT " + strings.Join([]string{idColumn, recordColumn, oversizedColumn}, ", ") + " FROM Files"

// Sizes streams the rows tail chooses as Rows does, with only each
// file's ID and size. The record is read where SQLite holds it, not
// copied twice as a Row's is: a verify reads every row of a backup.
func (m *ManifestDB) Sizes(ctx context.Context, tail string, args ...any) iter.Seq2[SizedRow, error] {
	return query(ctx, m, sizesQuery+" "+tail, args, scanSized)
}

func scanSized(scan func(...any) error) (SizedRow, error) {
	var id sql.NullString
	var record sql.RawBytes // valid until the next row
	var r SizedRow
	if err := scan(&id, &record, &r.Oversized); err != nil {
		return r, fmt.Errorf("contents: Manifest.db: %w", err)
	}
	r.FileID = id.String
	if record != nil {
		r.Size, r.SizeKnown = RecordSize(record)
	}
	return r, nil
}

// query streams the rows of q, each made by scan, at most m.maxRows.
func query[T any](ctx context.Context, m *ManifestDB, q string, args []any, scan func(func(...any) error) (T, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		rows, err := m.db.QueryContext(ctx, q, args...)
		if err != nil {
			yield(zero, fmt.Errorf("contents: Manifest.db: %w", err))
			return
		}
		defer rows.Close()
		var n int64
		for rows.Next() {
			if n++; n > m.maxRows {
				yield(zero, fmt.Errorf("contents: Manifest.db: Files yields over %d rows: %w", m.maxRows, ErrTooManyRows))
				return
			}
			r, err := scan(rows.Scan)
			if err != nil {
				yield(zero, err)
				return
			}
			if !yield(r, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(zero, fmt.Errorf("contents: Manifest.db: %w", err))
		}
	}
}

// RecordSize reads Size from a Files.file blob (an MBFile archive): in
// place when it can (mbfile.Size), else by decoding the whole record (an
// XML plist, say). Nothing it returns refers to blob.
func RecordSize(blob []byte) (int64, bool) {
	if n, err := mbfile.Size(blob); err == nil {
		return n, true
	}
	rec, err := mbfile.Decode(blob)
	if err != nil {
		return 0, false
	}
	return rec.Size, true
}

func scanRow(scan func(...any) error) (Row, error) {
	var r Row
	var id, domain, rel sql.NullString
	var flags sql.NullInt64
	var oversized bool
	if err := scan(&id, &domain, &rel, &flags, &r.Record, &oversized); err != nil {
		return r, fmt.Errorf("contents: Manifest.db: %w", err)
	}
	r.FileID, r.Domain, r.RelativePath = id.String, domain.String, rel.String
	r.Flags, r.Oversized = flags.Int64, oversized
	return r, nil
}
