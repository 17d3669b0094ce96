package main

import (
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/proto/backupcrypt"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/fileset"
	"github.com/backupd/backupd/sim/simtest"
)

// The tests of files and extract run an in-process simulated iPhone,
// whose files they know, and `backupd run` backing it up; then the
// commands read the backups as a person would.

// simEnv is a simulated iPhone in this process and a configuration
// pointing at it; extra is appended to the configuration's [backup].
func simEnv(t *testing.T, cfg sim.DeviceConfig, extra string) (env, *sim.Device) {
	t.Helper()
	s, devs := simtest.StartT(t, cfg)
	e := configEnv(t, s.Socket())
	if extra != "" {
		f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(extra + "\n")
		f.Close()
	}
	return e, devs[0]
}

// waitFirstBackup waits for the plug-in backup of a running daemon to
// succeed.
func waitFirstBackup(t *testing.T, e env) {
	t.Helper()
	waitFor(t, "the plug-in backup", func() bool {
		rep, _ := e.status(t)
		return len(rep.Devices) == 1 && !rep.Devices[0].LastSuccess.IsZero() && rep.Devices[0].State == api.StateSucceeded
	})
}

// backupWait runs backup --wait and fails the test unless it succeeds.
func backupWait(t *testing.T, e env) {
	t.Helper()
	if out, errOut, code := cli(t, e.bin, "backup", "--wait", "--config", e.config); code != exitOK {
		t.Fatalf("backup --wait: exit %d\n%s\n%s", code, out, errOut)
	}
}

// present is the device's files that exist, those the filter keeps.
func present(files []fileset.File, keep func(fileset.File) bool) []fileset.File {
	var out []fileset.File
	for _, f := range files {
		if !f.Deleted && !f.IsDir() && (keep == nil || keep(f)) {
			out = append(out, f)
		}
	}
	return out
}

// checkTree checks that dest holds exactly files, by content hash, at
// <Domain>/<relativePath>, with their modification times.
func checkTree(t *testing.T, dest string, files []fileset.File) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dest, f.Domain, filepath.FromSlash(f.RelativePath))
		fh, err := os.Open(p)
		if err != nil {
			t.Fatalf("%s/%s not extracted: %v", f.Domain, f.RelativePath, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, fh)
		fi, _ := fh.Stat()
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		if [32]byte(h.Sum(nil)) != fileset.Hash(f) {
			t.Fatalf("%s: content differs from the device's (generation %d)", p, f.Generation)
		}
		if !fi.ModTime().Equal(f.ModTime) {
			t.Fatalf("%s: mtime %v, device has %v", p, fi.ModTime(), f.ModTime)
		}
	}
	if got := regularFiles(t, dest); len(got) != len(files) {
		t.Fatalf("%d files in %s, want %d", len(got), dest, len(files))
	}
}

// regularFiles lists the regular files under dir, relative to it; a
// missing dir has none.
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return filepath.SkipAll
			}
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// extractJSON runs extract --json and decodes its report.
func extractJSON(t *testing.T, e env, stdin string, args ...string) (extractReport, string, int) {
	t.Helper()
	out, errOut, code := cliStdin(t, e.bin, stdin, append([]string{"extract", "--json", "--config", e.config}, args...)...)
	var rep extractReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("extract --json %v (exit %d): %v\nstdout: %s\nstderr: %s", args, code, err, out, errOut)
	}
	return rep, errOut, code
}

// olderVersion is the name of the device's newest older version.
func olderVersion(t *testing.T, e env, udid string) repo.Version {
	t.Helper()
	r, err := repo.Open(e.backupDir(), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	vs, err := r.Versions(udid)
	if err != nil || len(vs) == 0 {
		t.Fatalf("versions of %s: %v %v", udid, vs, err)
	}
	return vs[0]
}

// TestE2EExtractEverything: extracting every file of a plain and of an
// encrypted backup gives the simulator's content and times, with the
// daemon running and without it; after a mutate and a second backup,
// --from the older version (by name and by date) gives the files as they
// were, and latest the files as they are.
func TestE2EExtractEverything(t *testing.T) {
	for _, pw := range []string{"", "s3cret pass"} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[pw != ""], func(t *testing.T) {
			e, d := simEnv(t, sim.DeviceConfig{BackupPassword: pw, Files: sim.FileSpec{Seed: 7, Count: 60, MinSize: 0, MaxSize: 96 << 10}}, "")
			pwFile := filepath.Join(e.dir, "pw")
			writeFile(t, pwFile, pw+"\n")
			daemon := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
			waitFirstBackup(t, e)
			first := present(d.Files(), nil)

			dest := filepath.Join(e.dir, "x1")
			rep, errOut, code := extractJSON(t, e, "", "--password-file", pwFile, "--to", dest)
			if code != exitOK || rep.Files != len(first) || len(rep.Failed) != 0 || len(rep.Skipped) != 0 || rep.Encrypted != (pw != "") || !rep.Latest {
				t.Fatalf("extract: exit %d, %+v\n%s", code, rep, errOut)
			}
			checkTree(t, dest, first)
			// Again: every file is there already and is skipped; with
			// --overwrite they are written again.
			rep, _, code = extractJSON(t, e, "", "--password-file", pwFile, "--to", dest)
			if code != exitOK || rep.Files != 0 || len(rep.Skipped) != len(first) {
				t.Errorf("extract into a full DIR: exit %d, %d files, %d skipped", code, rep.Files, len(rep.Skipped))
			}
			rep, _, code = extractJSON(t, e, "", "--password-file", pwFile, "--overwrite", "--to", dest)
			if code != exitOK || rep.Files != len(first) || len(rep.Skipped) != 0 {
				t.Errorf("extract --overwrite: exit %d, %d files, %d skipped", code, rep.Files, len(rep.Skipped))
			}

			if d.Mutate(0.4) == 0 {
				t.Fatal("nothing mutated")
			}
			backupWait(t, e)
			second := present(d.Files(), nil)
			old := olderVersion(t, e, d.UDID())
			if code := daemon.stop(t); code != exitOK {
				t.Fatalf("backupd run exited %d", code)
			}

			// Without the daemon: the older version by name and by date,
			// and the latest.
			for _, tc := range []struct {
				from  string
				files []fileset.File
			}{
				{old.Name, first},
				{old.Time.Add(time.Millisecond / 2).Format(time.RFC3339Nano), first},
				{"latest", second},
			} {
				dest := filepath.Join(e.dir, "x-"+strings.NewReplacer(":", "", ".", "").Replace(tc.from))
				rep, errOut, code := extractJSON(t, e, pw+"\n", d.UDID(), "--from", tc.from, "--password-file", "-", "--to", dest)
				if code != exitOK || rep.Files != len(tc.files) || len(rep.Failed) != 0 {
					t.Fatalf("extract --from %s: exit %d, %+v\n%s", tc.from, code, rep, errOut)
				}
				checkTree(t, dest, tc.files)
			}
		})
	}
}

// TestE2EExtractWrongPassword: a wrong password is wrong_backup_password,
// exit 1, and DIR is not even made. The keybag has enough rounds to be
// slow, so the commands say what takes the time.
func TestE2EExtractWrongPassword(t *testing.T) {
	e, _ := simEnv(t, sim.DeviceConfig{BackupPassword: "right", BackupKeyRounds: backupcrypt.Params{DPIC: 100_000, Iter: 100},
		Files: sim.FileSpec{Seed: 3, Count: 20, MaxSize: 8 << 10}}, "")
	start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	waitFirstBackup(t, e)
	dest := filepath.Join(e.dir, "out")
	out, errOut, code := cliStdin(t, e.bin, "wrong\n", "extract", "--json", "--password-file", "-", "--to", dest, "--config", e.config)
	var rep errorJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitError || rep.Cause != cause.WrongBackupPassword || rep.Fix == "" {
		t.Fatalf("extract with a wrong password: exit %d, %v, %+v\n%s\n%s", code, err, rep, out, errOut)
	}
	if _, err := os.Lstat(dest); !os.IsNotExist(err) {
		t.Fatalf("DIR exists after a wrong password: %v", err)
	}
	_, errOut, code = cliStdin(t, e.bin, "wrong\n", "files", "--password-file", "-", "--config", e.config)
	if code != exitError || !strings.Contains(errOut, string(cause.WrongBackupPassword)) || !strings.Contains(errOut, "Fix: give the password this backup was made with") ||
		!strings.Contains(errOut, "deriving the key from the password") {
		t.Errorf("files with a wrong password: exit %d:\n%s", code, errOut)
	}
	// Without a password and without a terminal to ask on.
	_, errOut, code = cliStdin(t, e.bin, "", "files", "--config", e.config)
	if code != exitError || !strings.Contains(errOut, "--password-file") {
		t.Errorf("files without a password: exit %d:\n%s", code, errOut)
	}
}

// filesJSON runs files --json and decodes its list.
func filesJSON(t *testing.T, e env, args ...string) (filesHeader, []fileJSON) {
	t.Helper()
	out, errOut, code := cli(t, e.bin, append([]string{"files", "--json", "--config", e.config}, args...)...)
	var rep struct {
		filesHeader
		Files []fileJSON `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK {
		t.Fatalf("files --json %v: exit %d, %v\nstdout: %s\nstderr: %s", args, code, err, out, errOut)
	}
	return rep.filesHeader, rep.Files
}

func names(files []fileset.File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Domain+"/"+f.RelativePath)
	}
	slices.Sort(out)
	return out
}

// TestE2EFilesAndPhotos: files --json lists what a domain filter and a
// glob choose, with sizes and times; extract --photos takes the camera
// roll's photos and nothing else; a GLOB extracts only what it matches.
func TestE2EFilesAndPhotos(t *testing.T) {
	e, d := simEnv(t, sim.DeviceConfig{Files: sim.FileSpec{Seed: 11, Count: 300, MaxSize: 4 << 10}}, "")
	start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	waitFirstBackup(t, e)
	all := present(d.Files(), nil)

	tests := []struct {
		name string
		args []string
		keep func(fileset.File) bool
	}{
		{"everything", nil, nil},
		{"domain", []string{"--domain", "HomeDomain"}, func(f fileset.File) bool { return f.Domain == "HomeDomain" }},
		{"domain and glob", []string{"--domain", "HomeDomain", "Library/Preferences/d001/*"},
			func(f fileset.File) bool {
				return f.Domain == "HomeDomain" && strings.HasPrefix(f.RelativePath, "Library/Preferences/d001/")
			}},
		{"double star", []string{"Media/**/*.HEIC"}, func(f fileset.File) bool { return strings.HasSuffix(f.RelativePath, ".HEIC") }},
		{"photos", []string{"--photos"}, func(f fileset.File) bool { return f.Domain == "CameraRollDomain" }},
		{"no match", []string{"--domain", "NoSuchDomain"}, func(fileset.File) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := present(all, tt.keep)
			head, list := filesJSON(t, e, tt.args...)
			if head.UDID != d.UDID() || !head.Latest || head.Encrypted {
				t.Errorf("header %+v", head)
			}
			var got []string
			byName := map[string]fileset.File{}
			for _, f := range want {
				byName[f.Domain+"/"+f.RelativePath] = f
			}
			for _, f := range list {
				n := f.Domain + "/" + f.RelativePath
				got = append(got, n)
				if w, ok := byName[n]; ok && (f.Size != w.Size || !f.ModTime.Equal(w.ModTime) || f.Kind != "file") {
					t.Errorf("%s: size %d mtime %v kind %s; device has %d %v", n, f.Size, f.ModTime, f.Kind, w.Size, w.ModTime)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, names(want)) {
				t.Fatalf("files %v lists %d files, want %d:\n%v\nwant\n%v", tt.args, len(got), len(want), got, names(want))
			}
		})
	}
	if n := len(present(all, func(f fileset.File) bool { return f.Domain == "CameraRollDomain" })); n == 0 || n == len(all) {
		t.Fatalf("%d camera roll files of %d: the photos case tests nothing", n, len(all))
	}

	// Extract --photos, and a glob.
	photos := present(all, func(f fileset.File) bool { return f.Domain == "CameraRollDomain" })
	dest := filepath.Join(e.dir, "photos")
	if rep, errOut, code := extractJSON(t, e, "", "--photos", "--to", dest); code != exitOK || rep.Files != len(photos) {
		t.Fatalf("extract --photos: exit %d, %+v\n%s", code, rep, errOut)
	}
	checkTree(t, dest, photos)
	prefs := present(all, func(f fileset.File) bool { return strings.HasPrefix(f.RelativePath, "Library/Preferences/d001/") })
	dest = filepath.Join(e.dir, "prefs")
	if rep, errOut, code := extractJSON(t, e, "", "--to", dest, "Library/Preferences/d001/*.plist"); code != exitOK || rep.Files != len(prefs) || len(prefs) == 0 {
		t.Fatalf("extract GLOB: exit %d, %+v (want %d)\n%s", code, rep, len(prefs), errOut)
	}
	checkTree(t, dest, prefs)

	// A bad pattern is a usage error.
	if _, errOut, code := cli(t, e.bin, "files", "[", "--config", e.config); code != exitUsage {
		t.Errorf("files with a bad pattern: exit %d: %s", code, errOut)
	}
}

// addHostileRows adds rows naming hostile paths to a backup's plain
// Manifest.db, each pointing at the content of a real file; it returns
// their Domain/relativePath names.
func addHostileRows(t *testing.T, backupDir string, victim fileset.File, outside string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(backupDir, "Manifest.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var blob []byte
	if err := db.QueryRow(`SELECT file FROM Files WHERE fileID = ?`, victim.FileID).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	rows := [][2]string{
		{"HomeDomain", "../../../escape-dotdot"},
		{"HomeDomain", outside},
		{"..", "escape-domain"},
		{"Home/../..", "escape-slash-domain"},
		{"HomeDomain", "a/" + strings.Repeat("x", 300)},
		{"HomeDomain", "nul\x00name"},
		{"HomeDomain", "a//b"},
	}
	content, err := os.ReadFile(filepath.Join(backupDir, filepath.FromSlash(victim.BackupPath())))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		// Each row has its own fileID with the victim's content, so a
		// reader that trusted the name would write real bytes there.
		id := fileset.FileID(r[0], r[1])
		if err := os.MkdirAll(filepath.Join(backupDir, id[:2]), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(backupDir, filepath.FromSlash(fileset.BackupPath(id))), content, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO Files (fileID, domain, relativePath, flags, file) VALUES (?, ?, ?, 1, ?)`,
			id, r[0], r[1], blob); err != nil {
			t.Fatal(err)
		}
		out = append(out, r[0]+"/"+r[1])
	}
	return out
}

// TestE2EExtractHostileAndDamaged: a backup whose Manifest.db names
// hostile paths writes 0 bytes outside DIR, lists each bad name, and
// extracts the good files; a truncated file is named as failed, the
// others extracted, exit 1. Then the same for an encrypted backup with a
// damaged ciphertext.
func TestE2EExtractHostileAndDamaged(t *testing.T) {
	for _, pw := range []string{"", "pw"} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[pw != ""], func(t *testing.T) {
			e, d := simEnv(t, sim.DeviceConfig{BackupPassword: pw, Files: sim.FileSpec{Seed: 13, Count: 40, MinSize: 100, MaxSize: 16 << 10}}, "")
			daemon := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
			waitFirstBackup(t, e)
			daemon.stop(t)
			all := present(d.Files(), nil)
			latest := filepath.Join(e.backupDir(), d.UDID())
			var bad []string
			outside := filepath.Join(e.dir, "outside-absolute")
			if pw == "" {
				bad = addHostileRows(t, latest, all[0], outside)
			}
			// Damage one file: truncate a plain one; flip the last byte of
			// the next-to-last block of an encrypted one, which breaks its
			// padding.
			var victim fileset.File
			for _, f := range all[1:] {
				if f.Size >= 64 {
					victim = f
					break
				}
			}
			stored := filepath.Join(latest, filepath.FromSlash(victim.BackupPath()))
			data, err := os.ReadFile(stored)
			if err != nil {
				t.Fatal(err)
			}
			if pw == "" {
				data = data[:len(data)-10]
			} else {
				data[len(data)-17] ^= 0xff
			}
			if err := os.WriteFile(stored, data, 0o600); err != nil {
				t.Fatal(err)
			}

			box := filepath.Join(e.dir, "box")
			dest := filepath.Join(box, "out")
			rep, errOut, code := extractJSON(t, e, pw+"\n", "--password-file", "-", "--to", dest)
			if code != exitError {
				t.Errorf("extract with a damaged file: exit %d, want %d", code, exitError)
			}
			if len(rep.Failed) != 1 || rep.Failed[0].Name != victim.Domain+"/"+victim.RelativePath || rep.Failed[0].FileID != victim.FileID {
				t.Fatalf("failed %+v, want only %s/%s\n%s", rep.Failed, victim.Domain, victim.RelativePath, errOut)
			}
			var skipped []string
			for _, s := range rep.Skipped {
				skipped = append(skipped, s.Name)
			}
			slices.Sort(skipped)
			slices.Sort(bad)
			if !slices.Equal(skipped, bad) {
				t.Errorf("skipped %q, want the hostile names %q", skipped, bad)
			}
			good := present(all, func(f fileset.File) bool { return f.FileID != victim.FileID })
			checkTree(t, dest, good)
			// Nothing outside DIR: box holds only DIR, the absolute path
			// was not written.
			if got := regularFiles(t, box); len(got) != len(good) {
				t.Errorf("%d files under DIR's parent, want the %d in DIR", len(got), len(good))
			}
			if _, err := os.Lstat(outside); !os.IsNotExist(err) {
				t.Errorf("the absolute path from the backup was written: %v", err)
			}
			if entries, _ := os.ReadDir(e.dir); slices.ContainsFunc(entries, func(d fs.DirEntry) bool { return strings.HasPrefix(d.Name(), "escape") }) {
				t.Error("a file escaped into the test's directory")
			}
			// The text report names the failed file and the skipped ones.
			out, _, code := cliStdin(t, e.bin, pw+"\n", "extract", "--password-file", "-", "--overwrite", "--to", filepath.Join(e.dir, "again"), "--config", e.config)
			if code != exitError || !strings.Contains(out, "FAILED  "+victim.Domain+"/"+victim.RelativePath) || !strings.Contains(out, "1 failed") {
				t.Errorf("extract's report: exit %d:\n%s", code, out)
			}
			for _, b := range bad {
				if !strings.Contains(out, "skipped "+b) && !strings.Contains(b, "\x00") {
					t.Errorf("the report does not list %q:\n%s", b, out)
				}
			}
		})
	}
}

// TestE2EVerifyPassword: verify --password-file checks an encrypted
// backup as deeply as a plain one, through the daemon and without it: a
// damaged ciphertext, which a check without the password cannot see, is
// found; a wrong password is wrong_backup_password.
func TestE2EVerifyPassword(t *testing.T) {
	e, d := simEnv(t, sim.DeviceConfig{BackupPassword: "pw", Files: sim.FileSpec{Seed: 19, Count: 30, MinSize: 100, MaxSize: 16 << 10}}, "")
	pwFile, wrongFile := filepath.Join(e.dir, "pw"), filepath.Join(e.dir, "wrong")
	writeFile(t, pwFile, "pw\n")
	writeFile(t, wrongFile, "nope\n")
	daemon := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	waitFirstBackup(t, e)

	verify := func(args ...string) (verifyReport, int) {
		t.Helper()
		out, errOut, code := cli(t, e.bin, append([]string{"verify", "--json", "--config", e.config}, args...)...)
		var rep verifyReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Backups) != 1 {
			t.Fatalf("verify %v: exit %d, %v\n%s\n%s", args, code, err, out, errOut)
		}
		return rep, code
	}
	victim := present(d.Files(), func(f fileset.File) bool { return f.Size >= 64 })[0]
	stored := filepath.Join(e.backupDir(), d.UDID(), filepath.FromSlash(victim.BackupPath()))
	data, err := os.ReadFile(stored)
	if err != nil {
		t.Fatal(err)
	}
	for _, running := range []bool{true, false} {
		if !running {
			daemon.stop(t)
		}
		rep, code := verify("--password-file", pwFile)
		b := rep.Backups[0]
		if code != exitOK || !b.OK || !b.Encrypted || rep.DaemonRunning != running || b.Files != len(present(d.Files(), nil)) {
			t.Errorf("verify --password-file (daemon running %t): exit %d, %+v", running, code, rep)
		}
		rep, code = verify("--password-file", wrongFile)
		if b := rep.Backups[0]; code != exitError || b.OK || b.Cause != cause.WrongBackupPassword {
			t.Errorf("verify with a wrong password (daemon running %t): exit %d, %+v", running, code, b)
		}
		// A flipped byte that breaks the file's padding.
		bad := slices.Clone(data)
		bad[len(bad)-17] ^= 0xff
		writeFile(t, stored, string(bad))
		rep, code = verify("--password-file", pwFile)
		if b := rep.Backups[0]; code != exitError || b.OK || !strings.Contains(strings.Join(b.Problems, "\n"), victim.FileID) {
			t.Errorf("verify --password-file of a damaged file (daemon running %t): exit %d, %+v; want %s named", running, code, b, victim.FileID)
		}
		writeFile(t, stored, string(data))
	}
}
