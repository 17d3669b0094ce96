package backupsvc

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/backupd/backupd/sim/fileset"
)

// TestMakeManifestHostile: the endless mode's Files yields more rows than
// any bound (it has no end) and the huge mode's records each read as
// 256 MiB, while its rows are still the device's files.
func TestMakeManifestHostile(t *testing.T) {
	set, err := fileset.New(fileset.Spec{Seed: 3, Files: 10, MaxSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		mode  Hostile
		query string
		want  int64
	}{
		{"endless", HostileManifestEndless, `SELECT count(*) FROM (SELECT fileID FROM Files LIMIT 200000)`, 200000},
		{"huge records", HostileManifestHugeBlobs, `SELECT min(length(file)) FROM Files`, 256 << 20},
		{"huge, rows kept", HostileManifestHugeBlobs, `SELECT count(*) FROM Files WHERE flags = 1`, 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, err := buildManifestDB(ctx, t.TempDir(), set.Files(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := MakeManifestHostile(ctx, path, tt.mode); err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite", sqliteURI(path, "mode=ro"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var got int64
			if err := db.QueryRowContext(ctx, tt.query).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("%s = %d, want %d", tt.query, got, tt.want)
			}
		})
	}
	if err := MakeManifestHostile(ctx, "unused", HostileDotDot); err == nil {
		t.Fatal("dotdot made a hostile Manifest.db")
	}
}

// TestManifestInOddFolder: the simulator's Manifest.db is written and read
// in a folder whose name holds the characters that end a path in a SQLite
// URI, as a person's TMPDIR or a test's name may.
func TestManifestInOddFolder(t *testing.T) {
	set, err := fileset.New(fileset.Spec{Seed: 3, Files: 10, MaxSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"a#01", "b?x=1", "c%20d"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path, err := buildManifestDB(ctx, dir, set.Files(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(path) != dir {
				t.Fatalf("written to %s, want it in %s", path, dir)
			}
			got, err := readManifestDB(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				t.Fatal("read back no files")
			}
		})
	}
}
