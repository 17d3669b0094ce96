package repo_test

import (
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"howett.net/plist"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/proto/wire"
)

const testUDID = "00008030-001A2B3C4D5E802E"

// fakeBackup describes a small backup in the Apple layout: enough for
// Verify, with real plists, a real Manifest.db and the blob files.
type fakeBackup struct {
	Files     map[string]string // relativePath in HomeDomain → content
	State     string            // SnapshotState; "" means "finished"
	Encrypted bool
	Tag       string // goes into Status.plist's UUID, to tell trees apart
}

func fileID(rel string) string {
	sum := sha1.Sum([]byte("HomeDomain-" + rel))
	return hex.EncodeToString(sum[:])
}

// writeNew writes data to a new file and renames it over path, as the
// engine does: a file in a clone may share its inode with the latest
// backup, so it is never opened for writing.
func writeNew(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".new-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
}

func encodePlist(t testing.TB, v any) []byte {
	t.Helper()
	b, err := wire.Encode(v, wire.Binary)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mbFileBlob is the Files.file column for a file of the given size, as
// iOS archives it (NSKeyedArchiver of an MBFile).
func mbFileBlob(t testing.TB, rel string, size int) []byte {
	return encodePlist(t, map[string]any{
		"$version":  100000,
		"$archiver": "NSKeyedArchiver",
		"$top":      map[string]any{"root": plist.UID(1)},
		"$objects": []any{
			"$null",
			map[string]any{"$class": plist.UID(3), "RelativePath": plist.UID(2), "Size": int64(size), "Mode": int64(0o100644)},
			rel,
			map[string]any{"$classname": "MBFile", "$classes": []any{"MBFile", "NSObject"}},
		},
	})
}

// writeBackup makes tree hold exactly the backup b describes, changing an
// existing tree (a clone) the way a device's incremental backup does: new
// files and new plists by rename, files no longer listed removed.
func writeBackup(t testing.TB, tree string, b fakeBackup) {
	t.Helper()
	state := b.State
	if state == "" {
		state = "finished"
	}
	now := time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)
	writeNew(t, filepath.Join(tree, "Info.plist"), encodePlist(t, map[string]any{
		"Device Name": "Test iPhone", "Unique Identifier": testUDID, "Target Type": "Device", "Last Backup Date": now,
	}))
	manifest := map[string]any{"Version": "10.0", "IsEncrypted": b.Encrypted, "Date": now,
		"Lockdown": map[string]any{"UniqueDeviceID": testUDID, "ProductVersion": "17.5"}}
	if b.Encrypted {
		manifest["BackupKeyBag"] = []byte("keybag")
		manifest["ManifestKey"] = []byte("key")
	}
	writeNew(t, filepath.Join(tree, "Manifest.plist"), encodePlist(t, manifest))

	want := map[string]bool{}
	rels := make([]string, 0, len(b.Files))
	for rel := range b.Files {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		id := fileID(rel)
		want[id] = true
		p := filepath.Join(tree, id[:2], id)
		if old, err := os.ReadFile(p); err == nil && string(old) == b.Files[rel] {
			continue // unchanged: an incremental backup leaves it be
		}
		writeNew(t, p, []byte(b.Files[rel]))
	}
	// Files the device no longer has.
	entries, _ := os.ReadDir(tree)
	for _, e := range entries {
		if !e.IsDir() || len(e.Name()) != 2 {
			continue
		}
		blobs, _ := os.ReadDir(filepath.Join(tree, e.Name()))
		for _, f := range blobs {
			if !want[f.Name()] {
				if err := os.Remove(filepath.Join(tree, e.Name(), f.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	// Manifest.db, built beside and renamed into place.
	tmp := filepath.Join(tree, ".Manifest.db.new")
	os.Remove(tmp)
	db, err := sql.Open("sqlite", "file:"+tmp)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB)`)
	exec(`CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB)`)
	exec(`BEGIN`)
	exec(`INSERT INTO Files VALUES (?, 'HomeDomain', '', 2, NULL)`, fileID(""))
	for _, rel := range rels {
		exec(`INSERT INTO Files VALUES (?, 'HomeDomain', ?, 1, ?)`, fileID(rel), rel, mbFileBlob(t, rel, len(b.Files[rel])))
	}
	exec(`COMMIT`)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// SQLite creates files 0644; backups are private (and a copy clone
	// makes every file 0600, which TreeHash would tell apart).
	if err := os.Chmod(tmp, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(tree, "Manifest.db")); err != nil {
		t.Fatal(err)
	}
	// Status.plist last, as a device sends it.
	writeNew(t, filepath.Join(tree, "Status.plist"), encodePlist(t, map[string]any{
		"BackupState": "new", "Date": now, "IsFullBackup": false, "SnapshotState": state,
		"UUID": "UUID-" + b.Tag, "Version": "3.3",
	}))
}

// files returns n files named f0..f(n-1) whose content depends on gen.
func files(n, gen int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("Library/f%d", i)] = fmt.Sprintf("file %d generation %d", i, gen)
	}
	return m
}

func treeHash(t testing.TB, dir string) string {
	t.Helper()
	h, err := repo.TreeHash(dir)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// dirEntries lists the names in dir; a missing dir has none.
func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
