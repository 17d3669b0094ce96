package repo_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/contents"
	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim/backupsvc"
)

// hostileSQL makes a backup's Manifest.db hostile in ways the simulator's
// modes do not: a view that only makes every record huge, a virtual
// table, and ordinary tables storing values no phone writes.
var hostileSQL = map[string]string{
	"view with huge blobs": `ALTER TABLE Files RENAME TO FilesStored;
		CREATE VIEW Files AS SELECT fileID, domain, relativePath, flags, zeroblob(268435456) AS file FROM FilesStored`,
	"virtual table":                `DROP TABLE Files; CREATE VIRTUAL TABLE Files USING fts5(fileID, domain, relativePath, flags, file)`,
	"stored record over the bound": `UPDATE Files SET file = zeroblob(1048576) WHERE flags = 1`,
	"stored path over the bound":   `UPDATE Files SET relativePath = printf('%.*c', 8192, 'a') WHERE flags = 1`,
}

// TestVerifyHostileManifest: a Manifest.db whose Files is a recursive
// view (rows without end), has a generated 256 MiB record, or is anything
// but an ordinary table holding what a phone writes, is refused as
// verify_failed, and at once: before the guard, verify of the endless
// view never ended and the huge records cost 256 MiB a row and verified.
func TestVerifyHostileManifest(t *testing.T) {
	type hostile struct {
		name string
		make func(t *testing.T, db string)
		says string
	}
	var cases []hostile
	for _, mode := range []backupsvc.Hostile{backupsvc.HostileManifestEndless, backupsvc.HostileManifestHugeBlobs} {
		cases = append(cases, hostile{string(mode), func(t *testing.T, db string) {
			if err := backupsvc.MakeManifestHostile(context.Background(), db, mode); err != nil {
				t.Fatal(err)
			}
		}, "not a backup manifest"})
	}
	for name, q := range hostileSQL {
		says := "not a backup manifest"
		if strings.HasPrefix(name, "stored") {
			says = "a value over its bound"
		}
		cases = append(cases, hostile{name, func(t *testing.T, db string) { execSQL(t, db, q) }, says})
	}
	r := openRepo(t, t.TempDir(), repo.Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeBackup(t, dir, fakeBackup{Files: files(20, 1)})
			c.make(t, filepath.Join(dir, "Manifest.db"))
			// Far longer than verifying takes: a verify still running
			// then is one that would not end.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rep, err := r.Verify(ctx, dir)
			if ctx.Err() != nil {
				t.Fatalf("verify ran for a minute: %v", err)
			}
			if cause.Of(err) != cause.VerifyFailed || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("verify: %v (report %s), want verify_failed saying %q", err, rep, c.says)
			}
			if _, err := contents.Open(ctx, dir, contents.Options{}); !strings.HasPrefix(c.name, "stored") && !errors.Is(err, contents.ErrNotManifest) {
				t.Errorf("contents.Open: %v, want ErrNotManifest", err)
			}
		})
	}
}

// TestVerifyDeadline: a verify that outlasts Options.VerifyTimeout ends
// as verify_failed, saying so, and not as an interruption of the caller.
func TestVerifyDeadline(t *testing.T) {
	dir := t.TempDir()
	writeBackup(t, dir, fakeBackup{Files: files(20, 1)})
	r := openRepo(t, t.TempDir(), repo.Options{VerifyTimeout: time.Nanosecond})
	_, err := r.Verify(context.Background(), dir)
	if cause.Of(err) != cause.VerifyFailed || !strings.Contains(err.Error(), "did not finish within") {
		t.Fatalf("verify: %v, want verify_failed for the deadline", err)
	}
}

func execSQL(t *testing.T, path, q string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
