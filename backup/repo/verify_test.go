package repo_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// copyTree copies src to dst byte for byte, so a test can damage the copy.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// corruption damages a good backup in one way; says is what the error
// must name.
type corruption struct {
	name   string
	damage func(t *testing.T, dir string)
	says   string
}

func removeFile(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func replaceFile(name string, data []byte) func(*testing.T, string) {
	return func(t *testing.T, dir string) { writeNew(t, filepath.Join(dir, name), data) }
}

// listedFile returns one file Manifest.db lists, as xx/fileID.
func listedFile(t *testing.T, dir string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "Manifest.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id string
	if err := db.QueryRow(`SELECT fileID FROM Files WHERE flags = 1 ORDER BY fileID LIMIT 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(id[:2], id)
}

func corruptions(t *testing.T) []corruption {
	garbage := make([]byte, 4096)
	rand.Read(garbage)
	return []corruption{
		{"Status.plist missing", removeFile("Status.plist"), "Status.plist is missing"},
		{"SnapshotState not finished", func(t *testing.T, dir string) {
			writeNew(t, filepath.Join(dir, "Status.plist"), encodePlist(t, map[string]any{"SnapshotState": "uploading", "Version": "3.3"}))
		}, `SnapshotState "uploading", not "finished"`},
		{"Status.plist unparsable", replaceFile("Status.plist", []byte("bplist00 nonsense")), "Status.plist does not parse"},
		{"Info.plist missing", removeFile("Info.plist"), "Info.plist is missing"},
		{"Manifest.plist unparsable", replaceFile("Manifest.plist", []byte("<?xml version=\"1.0\"?><plist><dict><key>a</dict>")), "Manifest.plist does not parse"},
		{"Manifest.plist empty", replaceFile("Manifest.plist", nil), "Manifest.plist does not parse"},
		{"Manifest.db missing", removeFile("Manifest.db"), "Manifest.db is missing"},
		{"Manifest.db not SQLite", replaceFile("Manifest.db", garbage), "Manifest.db is not an SQLite database"},
		{"Manifest.db truncated", func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, "Manifest.db"))
			if err != nil {
				t.Fatal(err)
			}
			writeNew(t, filepath.Join(dir, "Manifest.db"), b[:100])
		}, "Manifest.db cannot be read"},
		{"Manifest.db without a Files table", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "Manifest.db")
			os.Remove(p)
			db, _ := sql.Open("sqlite", "file:"+p)
			if _, err := db.Exec(`CREATE TABLE Other (x)`); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, "Manifest.db cannot be read"},
		{"a listed file missing", func(t *testing.T, dir string) {
			rel := listedFile(t, dir)
			removeFile(rel)(t, dir)
		}, "files Manifest.db lists are missing (1 of "},
		{"a listed file of the wrong size", func(t *testing.T, dir string) {
			rel := listedFile(t, dir)
			replaceFile(rel, []byte("not the right size at all, surely"))(t, dir)
		}, "files differ in size from what Manifest.db records (1): "},
		{"a listed file is a directory", func(t *testing.T, dir string) {
			rel := listedFile(t, dir)
			removeFile(rel)(t, dir)
			os.Mkdir(filepath.Join(dir, rel), 0o700)
		}, "files Manifest.db lists are not regular files (1): "},
		{"a hostile fileID", func(t *testing.T, dir string) {
			db, _ := sql.Open("sqlite", "file:"+filepath.Join(dir, "Manifest.db"))
			defer db.Close()
			if _, err := db.Exec(`INSERT INTO Files VALUES ('../../../../etc/passwd', 'HomeDomain', 'x', 1, NULL)`); err != nil {
				t.Fatal(err)
			}
		}, `Manifest.db lists invalid fileIDs (1): "../../../../etc/passwd"`},
	}
}

// checkCorruptions verifies the good backup in good, then each corruption
// of a copy of it.
func checkCorruptions(t *testing.T, good string, wantFiles int) {
	r := openRepo(t, t.TempDir(), repo.Options{})
	ctx := context.Background()
	before := treeHash(t, good)
	rep, err := r.Verify(ctx, good)
	if err != nil {
		t.Fatalf("a good backup does not verify: %v", err)
	}
	if !rep.ManifestRead || rep.FilesListed != wantFiles || rep.FilesPresent != wantFiles || rep.SizesChecked != wantFiles || len(rep.Problems) != 0 {
		t.Fatalf("report %+v, want %d files listed, present and size-checked", rep, wantFiles)
	}
	if got := treeHash(t, good); got != before {
		t.Fatal("Verify changed the backup")
	}
	for _, c := range corruptions(t) {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "b")
			copyTree(t, good, dir)
			c.damage(t, dir)
			rep, err := r.Verify(ctx, dir)
			if err == nil {
				t.Fatalf("verifies: %s", rep)
			}
			if got := cause.Of(err); got != cause.VerifyFailed {
				t.Fatalf("cause %s, want verify_failed: %v", got, err)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %q does not say %q", err, c.says)
			}
			if len(rep.Problems) == 0 {
				t.Fatalf("no problems in the report: %+v", rep)
			}
		})
	}
	t.Run("not a directory", func(t *testing.T) {
		_, err := r.Verify(ctx, filepath.Join(t.TempDir(), "nothing"))
		if cause.Of(err) != cause.VerifyFailed || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("Verify of a missing directory: %v", err)
		}
	})
}

// TestVerifySynthetic runs without any tool: a backup this test writes.
func TestVerifySynthetic(t *testing.T) {
	dir := t.TempDir()
	writeBackup(t, dir, fakeBackup{Files: files(40, 1)})
	checkCorruptions(t, dir, 40)
}

// simBackup backs the simulator up with Debian's idevicebackup2 and
// returns the backup's directory and the device's file count.
func simBackup(t *testing.T, cfg sim.DeviceConfig) (string, int) {
	tool := simtest.RequireTool(t, "idevicebackup2")
	s, devs := simtest.StartT(t, cfg)
	d := devs[0]
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, "-u", d.UDID(), "backup", "--full", dir)
	cmd.Env = append(cmd.Environ(), "USBMUXD_SOCKET_ADDRESS="+s.Address())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Backup Successful.") {
		t.Fatalf("idevicebackup2: %v\n%s", err, out)
	}
	return filepath.Join(dir, d.UDID()), len(d.FileHashes())
}

// TestVerifySimulatorBackup: what Debian's idevicebackup2 makes of the
// simulated iPhone verifies, and each corruption of it does not.
func TestVerifySimulatorBackup(t *testing.T) {
	dir, n := simBackup(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 60, MinSize: 1, MaxSize: 64 << 10}})
	checkCorruptions(t, dir, n)
}

// An encrypted backup: its Manifest.db cannot be read without the
// password, so Verify says what it could check instead of failing.
func TestVerifyEncrypted(t *testing.T) {
	check := func(t *testing.T, dir string, n int) {
		r := openRepo(t, t.TempDir(), repo.Options{})
		ctx := context.Background()

		// The simulator encrypts nothing but the flag: Manifest.db reads.
		rep, err := r.Verify(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Encrypted || !rep.ManifestRead || rep.FilesPresent != n || rep.SizesChecked != 0 {
			t.Fatalf("report %+v", rep)
		}
		if !strings.Contains(strings.Join(rep.NotChecked, " "), "sizes") {
			t.Fatalf("report does not say sizes were not checked: %s", rep)
		}

		// A real encrypted Manifest.db is noise without the key.
		noise := make([]byte, 64<<10)
		rand.Read(noise)
		writeNew(t, filepath.Join(dir, "Manifest.db"), noise)
		rep, err = r.Verify(ctx, dir)
		if err != nil {
			t.Fatalf("an encrypted backup fails: %v", err)
		}
		if rep.ManifestRead || rep.FilesOnDisk != n || !strings.Contains(strings.Join(rep.NotChecked, " "), "encrypted") {
			t.Fatalf("report %+v, want %d files on disk and a word about encryption", rep, n)
		}
		if !strings.Contains(rep.String(), "not checked") {
			t.Fatalf("String() = %s", rep)
		}

		// Encryption does not excuse a missing Status.plist.
		removeFile("Status.plist")(t, dir)
		if _, err := r.Verify(ctx, dir); cause.Of(err) != cause.VerifyFailed {
			t.Fatalf("encrypted without Status.plist: %v", err)
		}
	}
	t.Run("synthetic", func(t *testing.T) {
		dir := t.TempDir()
		writeBackup(t, dir, fakeBackup{Files: files(12, 1), Encrypted: true})
		check(t, dir, 12)
	})
	t.Run("simulator", func(t *testing.T) {
		// The simulator encrypts for real: without the password Verify
		// counts the files on disk; with it, it checks every one.
		dir, n := simBackup(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 25}, BackupPassword: "s3cret"})
		r := openRepo(t, t.TempDir(), repo.Options{})
		ctx := context.Background()
		rep, err := r.Verify(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Encrypted || rep.ManifestRead || rep.FilesOnDisk != n || !strings.Contains(strings.Join(rep.NotChecked, " "), "encrypted") {
			t.Fatalf("without the password: report %+v, want %d files on disk", rep, n)
		}
		rep, err = r.VerifyEncrypted(ctx, dir, []byte("s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		if !rep.ManifestRead || rep.FilesListed != n || rep.FilesPresent != n || rep.SizesChecked != n || len(rep.NotChecked) != 0 {
			t.Fatalf("with the password: report %+v, want %d files listed, present and size-checked", rep, n)
		}
		if _, err := r.VerifyEncrypted(ctx, dir, []byte("wrong")); cause.Of(err) != cause.WrongBackupPassword {
			t.Fatalf("wrong password: %v", err)
		}
		// A truncated file is named.
		var victim string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && len(d.Name()) == 40 && victim == "" {
				victim = p
			}
			return nil
		})
		b, err := os.ReadFile(victim)
		if err != nil {
			t.Fatal(err)
		}
		writeNew(t, victim, b[:len(b)-16])
		rep, err = r.VerifyEncrypted(ctx, dir, []byte("s3cret"))
		if cause.Of(err) != cause.VerifyFailed || !strings.Contains(err.Error(), filepath.Base(victim)) || rep.SizesChecked != n-1 {
			t.Fatalf("truncated %s: %v, report %+v", filepath.Base(victim), err, rep)
		}
	})
}

// Verify never writes into a backup: no -journal, -wal or -shm beside
// Manifest.db, even when the directory is writable.
func TestVerifyDoesNotWrite(t *testing.T) {
	dir := t.TempDir()
	writeBackup(t, dir, fakeBackup{Files: files(5, 1)})
	before := dirEntries(t, dir)
	r := openRepo(t, t.TempDir(), repo.Options{})
	if _, err := r.Verify(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	after := dirEntries(t, dir)
	if strings.Join(before, ",") != strings.Join(after, ",") {
		t.Fatalf("entries before %v, after %v", before, after)
	}
}
