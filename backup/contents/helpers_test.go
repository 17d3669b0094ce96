package contents

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/backupcrypt"
	"github.com/backupd/backupd/proto/mbfile"
	"github.com/backupd/backupd/proto/wire"
)

// testFile is one row of a hand-made backup.
type testFile struct {
	domain, rel string
	kind        Kind
	content     []byte
	mtime       time.Time
	target      string
	fileID      string // "" means SHA-1 of domain-rel
}

func (f testFile) id() string {
	if f.fileID != "" {
		return f.fileID
	}
	sum := sha1.Sum([]byte(f.domain + "-" + f.rel))
	return hex.EncodeToString(sum[:])
}

// makeBackup writes a backup directory as an iPhone's host would: plain,
// or encrypted with password (fast round counts) like a real one.
func makeBackup(t testing.TB, password string, files []testFile) string {
	t.Helper()
	dir := t.TempDir()
	var ck *backupcrypt.ClassKeys
	mp := map[string]any{"IsEncrypted": password != "", "Lockdown": map[string]any{"ProductVersion": "17.5"}}
	if password != "" {
		var err error
		ck, err = backupcrypt.NewClassKeys(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := ck.Seal(context.Background(), []byte(password), backupcrypt.Params{DPIC: 10, Iter: 10}, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		mp["BackupKeyBag"] = kb.Marshal()
	}
	dbPath := filepath.Join(t.TempDir(), "Manifest.db")
	db, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB);
		CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB);`); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rec := mbfile.File{RelativePath: f.rel, Size: int64(len(f.content)), LastModified: f.mtime.Unix(), ProtectionClass: 3, Target: f.target}
		switch f.kind {
		case KindFile:
			rec.Mode = 0o100644
		case KindDir:
			rec.Mode = 0o040755
		case KindSymlink:
			rec.Mode = 0o120755
		}
		content := f.content
		if ck != nil && f.kind == KindFile {
			key := make([]byte, 32)
			rand.Read(key)
			if rec.EncryptionKey, err = ck.Wrap(3, key); err != nil {
				t.Fatal(err)
			}
			content = encrypt(t, f.content, key)
		}
		blob, err := mbfile.Encode(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO Files VALUES (?, ?, ?, ?, ?)`, f.id(), f.domain, f.rel, int(f.kind), blob); err != nil {
			t.Fatal(err)
		}
		if f.kind == KindFile {
			id := f.id()
			if len(id) == 40 {
				writeFile(t, filepath.Join(dir, id[:2], id), content)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	manifest, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if ck != nil {
		key := make([]byte, 32)
		rand.Read(key)
		if mp["ManifestKey"], err = ck.Wrap(4, key); err != nil {
			t.Fatal(err)
		}
		manifest = encrypt(t, manifest, key)
	}
	writeFile(t, filepath.Join(dir, "Manifest.db"), manifest)
	b, err := wire.Encode(mp, wire.Binary)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "Manifest.plist"), b)
	return dir
}

func encrypt(t testing.TB, plain, key []byte) []byte {
	t.Helper()
	e, err := backupcrypt.NewEncrypter(bytes.NewReader(plain), key)
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func open(t testing.TB, dir, password string) *Backup {
	t.Helper()
	b, err := Open(context.Background(), dir, Options{Password: []byte(password), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// treeBytes lists every regular file under dir with its size; used to
// show that nothing was written.
func treeFiles(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			out[p] = fi.Size()
		}
		return nil
	})
	return out
}

func mustExec(t testing.TB, path, stmts string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmts); err != nil {
		t.Fatal(err)
	}
	return path
}
