package sim_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// waitPlugged waits for a rebooting device to come back.
func waitPlugged(t *testing.T, d *Device) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !d.Plugged() || d.SyncLocked() {
		if time.Now().After(deadline) {
			t.Fatal("the device did not come back from its reboot")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// backupWithTool makes a backup with idevicebackup2, as the restore
// tests' starting point.
func backupWithTool(t *testing.T, s *Sim, d *Device, dir string) {
	t.Helper()
	out, err := runTool(t, s, 3*time.Minute, "idevicebackup2", "-u", d.UDID(), "backup", "--full", dir)
	if err != nil || !strings.Contains(out, "Backup Successful.") {
		t.Fatalf("backup: %v\n%s", err, out)
	}
}

// TestIdevicebackup2Restore: Debian's idevicebackup2 restores a backup it
// made into the simulator; the device asks for Status.plist, the
// manifests, Info.plist and every file, and confirms each arrived with
// the content it had. With one file damaged on disk, the device names
// exactly that file. The options the tool sends are pinned here.
func TestIdevicebackup2Restore(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Files: FileSpec{Count: 300, MinSize: 1, MaxSize: 256 << 10}})
	d := devs[0]
	dir := t.TempDir()
	backupWithTool(t, s, d, dir)

	out, err := runTool(t, s, 3*time.Minute, "idevicebackup2", "-u", d.UDID(), "restore", "--system", "--settings", dir)
	if err != nil || !strings.Contains(out, "Restore Successful.") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	rep := d.LastRestore()
	if !rep.Done || rep.ErrorCode != 0 || rep.Asked != 300 || rep.Intact != 300 ||
		len(rep.Damaged)+len(rep.Missing)+len(rep.Unknown) != 0 || rep.HostileBytes != 0 {
		t.Fatalf("the device did not get every file intact:\n%s", FormatRestoreReport(rep))
	}
	for _, name := range []string{"Status.plist", "Manifest.plist", "Manifest.db", "Info.plist"} {
		if !slices.Contains(rep.MetaFiles, d.UDID()+"/"+name) {
			t.Errorf("the device did not receive %s: %v", name, rep.MetaFiles)
		}
	}
	// What Debian's idevicebackup2 1.3.0 sends for "restore --system
	// --settings": RestorePreserveSettings is the opposite of --settings,
	// RestoreShouldReboot is left out unless --no-reboot, and this
	// version has no RemoveItemsNotRestored at all (later ones send it
	// for --remove).
	want := map[string]any{
		"RestoreSystemFiles":      true,
		"RestoreDontCopyBackup":   true,
		"RestorePreserveSettings": false,
	}
	if len(rep.Options) != len(want) || rep.HasPassword {
		t.Errorf("options %v (password %t), want exactly %v", rep.Options, rep.HasPassword, want)
	}
	for k, v := range want {
		if rep.Options[k] != v {
			t.Errorf("option %s = %v, want %v", k, rep.Options[k], v)
		}
	}
	// The device reboots after a restore unless told not to.
	waitPlugged(t, d)

	// Damage one file of the backup, keeping its size.
	ids := d.FileHashes()
	victim := slices.Sorted(mapsKeys(ids))[17]
	p := filepath.Join(dir, d.UDID(), victim[:2], victim)
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		t.Fatalf("read %s: %v (%d bytes)", p, err, len(b))
	}
	b[len(b)/2] ^= 0xFF
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runTool(t, s, 3*time.Minute, "idevicebackup2", "-u", d.UDID(), "restore", "--system", "--settings", dir)
	// A phone cannot tell damaged content from good: the restore goes
	// through, and only the simulator's check names the file.
	if err != nil || !strings.Contains(out, "Restore Successful.") {
		t.Fatalf("restore of the damaged backup: %v\n%s", err, out)
	}
	rep = d.LastRestore()
	if !slices.Equal(rep.Damaged, []string{victim}) || rep.Intact != 299 || len(rep.Missing) != 0 {
		t.Fatalf("want exactly %s damaged:\n%s", victim, FormatRestoreReport(rep))
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestIdevicebackup2RestoreFaults: each refusal a phone gives, as
// idevicebackup2 reports it.
func TestIdevicebackup2RestoreFaults(t *testing.T) {
	cases := []struct {
		name  string
		cfg   DeviceConfig
		setup func(*Device)
		args  []string
		says  string
	}{
		{"Find My is on (211)", DeviceConfig{}, func(d *Device) { d.SetFindMy(true) }, nil, "Restore Failed (Error Code 211)"},
		{"passcode never entered (208)", DeviceConfig{Faults: Faults{PasscodeNeverEntered: true, PasscodeDelay: 100 * time.Millisecond}}, nil, nil, "Restore Failed (Error Code 208)"},
		{"wrong backup password (207)", DeviceConfig{BackupPassword: "s3cret"}, nil, []string{"--password", "wrong"}, "Restore Failed (Error Code 207)"},
		{"missing file (205)", DeviceConfig{}, nil, nil, "Restore Failed (Error Code 205)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.Files = FileSpec{Count: 40}
			faults := tc.cfg.Faults
			tc.cfg.Faults = Faults{}
			s, devs := simtest.StartT(t, tc.cfg)
			d := devs[0]
			dir := t.TempDir()
			backupWithTool(t, s, d, dir)
			if tc.says == "Restore Failed (Error Code 205)" {
				id := slices.Sorted(mapsKeys(d.FileHashes()))[3]
				if err := os.Remove(filepath.Join(dir, d.UDID(), id[:2], id)); err != nil {
					t.Fatal(err)
				}
			}
			d.SetFaults(faults)
			if tc.setup != nil {
				tc.setup(d)
			}
			args := append([]string{"-u", d.UDID(), "restore", "--system", "--settings", "--no-reboot"}, tc.args...)
			out, err := runTool(t, s, 2*time.Minute, "idevicebackup2", append(args, dir)...)
			if err == nil || !strings.Contains(out, tc.says) {
				t.Fatalf("want %q:\n%v\n%s", tc.says, err, out)
			}
			if rep := d.LastRestore(); !rep.Done || rep.ErrorCode == 0 {
				t.Fatalf("the device reports success:\n%s", FormatRestoreReport(rep))
			}
		})
	}
}

// TestIdevicebackup2RestoreTwiceNeedsReboot: with --no-reboot, a second
// restore fails with 102 until the phone restarts.
func TestIdevicebackup2RestoreTwiceNeedsReboot(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Files: FileSpec{Count: 20}})
	d := devs[0]
	dir := t.TempDir()
	backupWithTool(t, s, d, dir)
	restore := func() string {
		out, _ := runTool(t, s, 2*time.Minute, "idevicebackup2", "-u", d.UDID(), "restore", "--no-reboot", dir)
		return out
	}
	if out := restore(); !strings.Contains(out, "Restore Successful.") {
		t.Fatalf("first restore:\n%s", out)
	}
	if opts := d.LastRestore().Options; opts["RestoreShouldReboot"] != false || opts["RestorePreserveSettings"] != true || opts["RestoreSystemFiles"] != false {
		t.Errorf("options of restore --no-reboot: %v", opts)
	}
	if !d.Plugged() {
		t.Fatal("the device rebooted although told not to")
	}
	if out := restore(); !strings.Contains(out, "Restore Failed (Error Code 102)") {
		t.Fatalf("second restore without a reboot:\n%s", out)
	}
	d.Reboot()
	if out := restore(); !strings.Contains(out, "Restore Successful.") {
		t.Fatalf("restore after a reboot:\n%s", out)
	}
}

// TestIdevicebackup2RestoreHostileDotDot: idevicebackup2 does not confine
// the paths a phone asks for, so the hostile phone gets /etc/passwd's
// bytes from it: this shows the simulator's count of hostile bytes
// works, the count backupd's engine must keep at 0.
func TestIdevicebackup2RestoreHostileDotDot(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Files: FileSpec{Count: 10}})
	d := devs[0]
	dir := t.TempDir()
	backupWithTool(t, s, d, dir)
	d.SetFaults(Faults{Hostile: "restore-dotdot"})
	out, _ := runTool(t, s, 2*time.Minute, "idevicebackup2", "-u", d.UDID(), "restore", "--no-reboot", dir)
	rep := d.CurrentRestore()
	fi, err := os.Stat("/etc/passwd")
	if err != nil {
		t.Skip("no /etc/passwd on this system")
	}
	if rep.HostileBytes != fi.Size() {
		t.Fatalf("hostile bytes %d, /etc/passwd has %d:\n%s\n%s", rep.HostileBytes, fi.Size(), FormatRestoreReport(rep), out)
	}
}

// TestIdevicebackup2RestoreMutate: idevicebackup2 does what a phone asks,
// even during a restore, so the hostile phone's requests to change the
// backup succeed there: this shows the simulator's count works, the
// count backupd's engine keeps at 0.
func TestIdevicebackup2RestoreMutate(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Files: FileSpec{Count: 10}})
	d := devs[0]
	dir := t.TempDir()
	backupWithTool(t, s, d, dir)
	d.SetFaults(Faults{Hostile: "restore-mutate"})
	out, _ := runTool(t, s, 2*time.Minute, "idevicebackup2", "-u", d.UDID(), "restore", "--no-reboot", dir)
	rep := d.CurrentRestore()
	if rep.MutationsAsked != 5 || rep.MutationsAccepted == 0 {
		t.Fatalf("asked %d, accepted %d:\n%s\n%s", rep.MutationsAsked, rep.MutationsAccepted, FormatRestoreReport(rep), out)
	}
	if _, err := os.Stat(filepath.Join(dir, d.UDID(), "Manifest.db")); !os.IsNotExist(err) {
		t.Fatalf("idevicebackup2 kept Manifest.db although the phone asked to remove it: %v", err)
	}
}

// TestIdevicebackup2RestoreEncrypted: Debian's idevicebackup2 restores an
// encrypted backup it made, with the password: the device unlocks the
// backup's keybag, decrypts Manifest.db and each file, and finds every
// file intact. With a wrong password it refuses with ErrorCode 207
// before it asks for any file.
func TestIdevicebackup2RestoreEncrypted(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{BackupPassword: "s3cret", Files: FileSpec{Count: 60, MinSize: 1, MaxSize: 64 << 10}})
	d := devs[0]
	dir := t.TempDir()
	backupWithTool(t, s, d, dir)

	out, err := runTool(t, s, 3*time.Minute, "idevicebackup2", "-u", d.UDID(), "restore", "--system", "--password", "wrong", dir)
	rep := d.LastRestore()
	if err == nil || rep.ErrorCode != 207 || rep.Asked != 0 {
		t.Fatalf("restore with a wrong password: %v\n%s\n%s", err, out, FormatRestoreReport(rep))
	}
	waitPlugged(t, d)
	out, err = runTool(t, s, 3*time.Minute, "idevicebackup2", "-u", d.UDID(), "restore", "--system", "--password", "s3cret", dir)
	if err != nil || !strings.Contains(out, "Restore Successful.") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	rep = d.LastRestore()
	if !rep.Done || rep.ErrorCode != 0 || !rep.HasPassword || rep.Asked != 60 || rep.Intact != 60 || len(rep.Damaged)+len(rep.Missing)+len(rep.Unknown) != 0 {
		t.Fatalf("the device did not get every file intact:\n%s", FormatRestoreReport(rep))
	}
}
