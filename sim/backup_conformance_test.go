package sim_test

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"

	_ "modernc.org/sqlite"
)

// checkBackupMatches opens the Manifest.db idevicebackup2 left and checks
// that every file it lists exists with the content the device generated,
// and that it lists every file the device has.
func checkBackupMatches(t *testing.T, dir string, d *Device) {
	t.Helper()
	root := filepath.Join(dir, d.UDID())
	for _, name := range []string{"Info.plist", "Manifest.plist", "Manifest.db", "Status.plist"} {
		if _, err := os.Stat(filepath.Join(root, name)); err != nil {
			t.Fatalf("backup lacks %s: %v", name, err)
		}
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(root, "Manifest.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT fileID FROM Files WHERE flags = 1`)
	if err != nil {
		t.Fatalf("Manifest.db: %v", err)
	}
	defer rows.Close()
	want := d.FileHashes()
	seen := 0
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		seen++
		rel := filepath.Join(id[:2], id)
		f, err := os.Open(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("Manifest.db lists %s but the backup lacks it: %v", id, err)
			continue
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want[id] {
			t.Errorf("file %s: content hash %s, device has %s", id, got, want[id])
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(want) {
		t.Errorf("Manifest.db lists %d files, the device has %d", seen, len(want))
	}
}

func TestIdevicebackup2FullAndIncremental(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Files: FileSpec{Count: 300, MinSize: 1, MaxSize: 256 << 10}})
	d := devs[0]
	dir := t.TempDir()

	out, err := runTool(t, s, 3*time.Minute, "idevicebackup2", "-u", d.UDID(), "backup", "--full", dir)
	if err != nil || !strings.Contains(out, "Backup Successful.") {
		t.Fatalf("full backup: %v\n%s", err, out)
	}
	checkBackupMatches(t, dir, d)
	if st := d.BackupStats(); st.FilesSent != 300 || !st.LastFull {
		t.Fatalf("full backup sent %d files (full=%t), want 300", st.FilesSent, st.LastFull)
	}
	// The device checked idevicebackup2's listings of the backup folder,
	// Snapshot and every xx/ folder against its own manifest.
	if st := d.BackupStats(); st.DirsChecked < 3 {
		t.Fatalf("the device checked %d listings, want the backup folder, Snapshot and the xx/ folders", st.DirsChecked)
	}

	changed := d.Mutate(0.01)
	if changed < 1 {
		t.Fatalf("mutate changed %d files", changed)
	}
	out, err = runTool(t, s, 3*time.Minute, "idevicebackup2", "-u", d.UDID(), "backup", dir)
	if err != nil || !strings.Contains(out, "Backup Successful.") {
		t.Fatalf("incremental backup: %v\n%s", err, out)
	}
	if st := d.BackupStats(); st.FilesSent != changed || st.LastFull || st.DirsChecked < 3 {
		t.Fatalf("incremental backup sent %d files (full=%t, %d listings checked), want only the %d changed", st.FilesSent, st.LastFull, st.DirsChecked, changed)
	}
	checkBackupMatches(t, dir, d)
}

// TestIdevicebackup2UnreadableFiles: files the device cannot read go out
// as an error block alone and the backup still succeeds with Debian's
// tool, whose listings the device checks at the end; the next backup
// sends those files again and the backup is then whole.
func TestIdevicebackup2UnreadableFiles(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Files: FileSpec{Count: 50}, Faults: Faults{UnreadableFiles: 2}})
	d := devs[0]
	dir := t.TempDir()
	out, err := runTool(t, s, 2*time.Minute, "idevicebackup2", "-u", d.UDID(), "backup", "--full", dir)
	if err != nil || !strings.Contains(out, "Backup Successful.") {
		t.Fatalf("backup with unreadable files: %v\n%s", err, out)
	}
	if st := d.BackupStats(); st.Unreadable != 2 || st.FilesSent != 48 || st.DirsChecked < 3 {
		t.Fatalf("stats %+v, want 2 unreadable, 48 sent and the listings checked", st)
	}
	d.SetFaults(Faults{})
	out, err = runTool(t, s, 2*time.Minute, "idevicebackup2", "-u", d.UDID(), "backup", dir)
	if err != nil || !strings.Contains(out, "Backup Successful.") {
		t.Fatalf("next backup: %v\n%s", err, out)
	}
	if st := d.BackupStats(); st.FilesSent != 2 || st.LastFull {
		t.Fatalf("stats %+v, want the 2 unread files sent again in an incremental backup", st)
	}
	checkBackupMatches(t, dir, d)
}

// TestIdevicebackup2AbsolutePaths: a device that names its paths with a
// leading '/' ("/<UDID>/Status.plist"), as real iPhones have, backs up
// with Debian's tool, which joins them to the backup directory with a
// '/': everything lands under it, in the usual place.
func TestIdevicebackup2AbsolutePaths(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Files: FileSpec{Count: 40}, Faults: Faults{AbsolutePaths: true}})
	d := devs[0]
	dir := t.TempDir()
	for _, args := range [][]string{{"backup", "--full", dir}, {"backup", dir}} {
		out, err := runTool(t, s, 2*time.Minute, "idevicebackup2", append([]string{"-u", d.UDID()}, args...)...)
		if err != nil || !strings.Contains(out, "Backup Successful.") {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if st := d.BackupStats(); st.LastFull || st.DirsChecked < 3 {
		t.Fatalf("stats %+v: want an incremental second backup, its listings checked", st)
	}
	checkBackupMatches(t, dir, d)
}

func TestIdevicebackup2Faults(t *testing.T) {
	cases := []struct {
		name   string
		faults Faults
		says   string // what idevicebackup2 prints
		replug bool
	}{
		{"device reports no space on the computer (105)", Faults{ErrorCode: 105}, "Backup Failed (Error Code 105)", false},
		{"snapshot failed after an interrupted backup (3)", Faults{ErrorCode: 3}, "ErrorCode 3: Failed to create snapshot", false},
		{"passcode never entered (208)", Faults{PasscodeNeverEntered: true, PasscodeDelay: 100 * time.Millisecond}, "Backup Failed (Error Code 208)", false},
		// idevicebackup2 tries the lock 50 times, 200 ms apart.
		{"another tool holds the sync lock", Faults{LockNeverGranted: true}, "timeout while locking for sync", false},
		// Mid-file: Debian's idevicebackup2 1.3.0 spins forever when the
		// connection drops exactly between two files (it takes a read of
		// 0 bytes for "device needs more time"), as it would with a phone.
		{"cable pulled mid-file", Faults{UnplugAfterBytes: 200 << 10}, "Backup Aborted.", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, devs := simtest.StartT(t, DeviceConfig{Files: FileSpec{Count: 100}, Faults: tc.faults})
			d := devs[0]
			dir := t.TempDir()
			out, err := runTool(t, s, 2*time.Minute, "idevicebackup2", "-u", d.UDID(), "backup", "--full", dir)
			if err == nil || strings.Contains(out, "Backup Successful.") {
				t.Fatalf("idevicebackup2 should fail:\n%s", out)
			}
			if !strings.Contains(out, tc.says) {
				t.Fatalf("idevicebackup2 should say %q:\n%s", tc.says, out)
			}
			// The simulator survives: clear the fault and back up again.
			d.SetFaults(Faults{})
			if tc.replug {
				if d.Plugged() {
					t.Fatal("the unplug fault left the device plugged")
				}
				d.Plug()
			}
			out, err = runTool(t, s, 2*time.Minute, "idevicebackup2", "-u", d.UDID(), "backup", "--full", dir)
			if err != nil || !strings.Contains(out, "Backup Successful.") {
				t.Fatalf("backup after the fault: %v\n%s", err, out)
			}
			checkBackupMatches(t, dir, d)
		})
	}
}

func TestIdevicebackup2Encryption(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Files: FileSpec{Count: 20}})
	d := devs[0]
	dir := t.TempDir()
	willEncrypt := func() string {
		out, err := runTool(t, s, 30*time.Second, "ideviceinfo", "-u", d.UDID(), "-q", "com.apple.mobile.backup", "-k", "WillEncrypt")
		if err != nil {
			t.Fatalf("ideviceinfo: %v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}
	if got := willEncrypt(); got != "false" {
		t.Fatalf("WillEncrypt before = %q", got)
	}
	out, err := runTool(t, s, time.Minute, "idevicebackup2", "-u", d.UDID(), "encryption", "on", "s3cret", dir)
	if err != nil || !strings.Contains(out, "enabled successfully") {
		t.Fatalf("encryption on: %v\n%s", err, out)
	}
	if got := willEncrypt(); got != "true" || d.BackupPassword() != "s3cret" {
		t.Fatalf("after encryption on: WillEncrypt %q, password %q", got, d.BackupPassword())
	}
	out, err = runTool(t, s, time.Minute, "idevicebackup2", "-u", d.UDID(), "encryption", "off", "wrong", dir)
	if err == nil && strings.Contains(out, "disabled successfully") {
		t.Fatalf("encryption off with the wrong password succeeded:\n%s", out)
	}
	if d.BackupPassword() != "s3cret" {
		t.Fatal("a wrong password changed the setting")
	}
	out, err = runTool(t, s, time.Minute, "idevicebackup2", "-u", d.UDID(), "encryption", "off", "s3cret", dir)
	if err != nil || !strings.Contains(out, "disabled successfully") {
		t.Fatalf("encryption off: %v\n%s", err, out)
	}
	if got := willEncrypt(); got != "false" {
		t.Fatalf("WillEncrypt after off = %q", got)
	}
}

// TestIdevicebackup2PasscodeEntered: a device that asks for its passcode
// (and relays the LocalAuthentication notifications, which
// idevicebackup2 does not observe) still backs up once it is entered.
func TestIdevicebackup2PasscodeEntered(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Files: FileSpec{Count: 20}, Faults: Faults{PasscodeDelay: 500 * time.Millisecond}})
	d := devs[0]
	dir := t.TempDir()
	out, err := runTool(t, s, 2*time.Minute, "idevicebackup2", "-u", d.UDID(), "backup", "--full", dir)
	if err != nil || !strings.Contains(out, "Backup Successful.") {
		t.Fatalf("backup with the passcode entered after 500ms: %v\n%s", err, out)
	}
	checkBackupMatches(t, dir, d)
}
