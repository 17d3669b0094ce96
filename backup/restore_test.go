package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim"
)

// restoreOpts are the default options without the reboot, so that a test
// decides when the simulated phone restarts.
func restoreOpts() RestoreOptions {
	o := DefaultRestoreOptions()
	o.NoReboot = true
	return o
}

// restore pins which of the device's backups and restores it.
func (r *rig) restore(which string, o RestoreOptions) (RestoreResult, error) {
	r.t.Helper()
	pin, err := r.repo.Pin(r.dev.UDID(), which)
	if err != nil {
		r.t.Fatal(err)
	}
	defer pin.Release()
	return r.restoreFrom(FromPin(r.repo, pin), o)
}

func (r *rig) restoreFrom(src RestoreSource, o RestoreOptions) (RestoreResult, error) {
	r.t.Helper()
	return r.eng.Restore(testCtx(r.t), r.device(), RestoreTarget{Source: src, Options: o})
}

// dirHash is the tree hash of the whole backup directory: every backup
// and version in it.
func (r *rig) dirHash() string {
	r.t.Helper()
	h, err := repo.TreeHash(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// requireIntact checks the simulator got every file of a backup of n
// files with the content it had when backed up.
func requireIntact(t *testing.T, d *sim.Device, n int) sim.RestoreReport {
	t.Helper()
	rep := d.LastRestore()
	if !rep.Done || rep.ErrorCode != 0 || rep.Asked != n || rep.Intact != n ||
		len(rep.Damaged)+len(rep.Missing)+len(rep.Unknown) != 0 || rep.HostileBytes != 0 {
		t.Fatalf("the device did not get all %d files intact:\n%s", n, sim.FormatRestoreReport(rep))
	}
	return rep
}

// TestRestoreLatest: every file arrives as backed up, the options are
// Finder's, the apps plist is written, and the backup is not changed by
// a byte.
func TestRestoreLatest(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 120, MinSize: 1, MaxSize: 256 << 10}}, testOptions(t))
	r.mustBackup(Target{})
	before := r.dirHash()
	var progress []Progress
	pin, err := r.repo.Pin(r.dev.UDID(), repo.LatestName)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.eng.Restore(testCtx(t), r.device(), RestoreTarget{
		Source: FromPin(r.repo, pin), Options: restoreOpts(),
		Progress: func(p Progress) { progress = append(progress, p) },
	})
	pin.Release()
	if err != nil {
		t.Fatalf("restore: %v (%+v)", err, res)
	}
	rep := requireIntact(t, r.dev, 120)
	if res.Files != 120+4 || res.Bytes < r.dev.Config().Files.MinSize*120 || !res.AppsPlist || res.Cause != cause.None {
		t.Errorf("result %+v: want 124 files sent (data and 4 plists/db) and the apps plist", res)
	}
	want := map[string]any{"RestoreSystemFiles": true, "RestorePreserveSettings": false,
		"RestoreDontCopyBackup": true, "RemoveItemsNotRestored": false, "RestoreShouldReboot": false}
	for k, v := range want {
		if rep.Options[k] != v {
			t.Errorf("option %s = %v, want %v (all: %v)", k, rep.Options[k], v, rep.Options)
		}
	}
	if b, err := r.dev.AFCFile("/iTunesRestore/RestoreApplications.plist"); err != nil {
		t.Errorf("RestoreApplications.plist: %v", err)
	} else {
		var apps map[string]any
		if err := wire.Decode(b, &apps); err != nil || len(apps) == 0 {
			t.Errorf("RestoreApplications.plist: %d apps, %v", len(apps), err)
		}
	}
	if len(progress) == 0 || progress[len(progress)-1].Files == 0 {
		t.Errorf("progress %v", progress)
	}
	if r.dirHash() != before {
		t.Fatal("the restore changed the backup directory")
	}
	if r.dev.SyncLocked() {
		t.Error("the sync lock is still held")
	}
}

// TestRestoreOlderVersion: after a change and another backup, restoring
// the older version gives the older content exactly, the newer backup
// untouched.
func TestRestoreOlderVersion(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 80, MinSize: 1, MaxSize: 64 << 10}}, testOptions(t))
	r.mustBackup(Target{})
	old := r.dev.FileHashes()
	if n := r.dev.Mutate(0.25); n == 0 {
		t.Fatal("nothing mutated")
	}
	r.mustBackup(Target{})
	vs := r.versions()
	if len(vs) != 1 {
		t.Fatalf("versions %v", vs)
	}
	// The older backup holds what the device had then, not now.
	changed := 0
	for id, h := range r.dev.FileHashes() {
		if old[id] != h {
			changed++
			if got, err := fileHash(filepath.Join(vs[0].Path, id[:2], id)); err != nil || got != old[id] {
				t.Fatalf("version holds %s for %s, want the old %s (%v)", got, id, old[id], err)
			}
		}
	}
	if changed == 0 {
		t.Fatal("no file changed between the backups")
	}
	before := r.dirHash()
	if res, err := r.restore(vs[0].Name, restoreOpts()); err != nil {
		t.Fatalf("restore of %s: %v (%+v)", vs[0].Name, err, res)
	}
	requireIntact(t, r.dev, 80)
	// And by date: the newest backup at or before the older one's time.
	r.dev.Reboot()
	if _, err := r.restore(vs[0].Time.Format(time.RFC3339Nano), restoreOpts()); err != nil {
		t.Fatalf("restore by date: %v", err)
	}
	requireIntact(t, r.dev, 80)
	if r.dirHash() != before {
		t.Fatal("the restores changed the backup directory")
	}
}

// TestRestoreSurvivesRetention: commits of the same phone during the
// restore run retention that would remove the version being restored;
// the pin keeps it, byte for byte, until the restore is done, and the
// first retention after that removes it.
func TestRestoreSurvivesRetention(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 40, MinSize: 8 << 10, MaxSize: 32 << 10}}, testOptions(t))
	r.mustBackup(Target{})
	r.dev.Mutate(0.3)
	r.mustBackup(Target{})
	v := r.versions()[0]
	hash, err := repo.TreeHash(v.Path)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := r.repo.Pin(r.dev.UDID(), v.Name)
	if err != nil {
		t.Fatal(err)
	}
	commit := func() {
		s, err := r.repo.Begin(testCtx(t), r.dev.UDID())
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := s.Commit(testCtx(t)); err != nil {
			t.Error(err)
		}
	}
	retained := false
	res, err := r.eng.Restore(testCtx(t), r.device(), RestoreTarget{
		Source: FromPin(r.repo, pin), Options: restoreOpts(),
		Progress: func(p Progress) {
			if p.Files > 0 && !retained {
				retained = true
				// KeepLast is 3: four commits would prune v.
				for range 4 {
					commit()
				}
			}
		},
	})
	if err != nil {
		t.Fatalf("restore: %v (%+v)", err, res)
	}
	if !retained {
		t.Fatal("no retention ran during the restore")
	}
	requireIntact(t, r.dev, 40)
	if got, err := repo.TreeHash(v.Path); err != nil || got != hash {
		t.Fatalf("the pinned version changed or went away: %v", err)
	}
	if n := len(r.versions()); n != 4 {
		t.Errorf("%d versions kept while one is pinned, want 3 + the pinned one", n)
	}
	pin.Release()
	commit()
	if _, err := os.Stat(v.Path); !os.IsNotExist(err) {
		t.Errorf("the released version outlived retention: %v", err)
	}
}

// dirSource is a backup in a directory of the test's own, standing for
// another phone's backup (SourceIdentifier udid).
type dirSource struct {
	dir, udid string
	r         *repo.Repo
}

func (d dirSource) Dir() string  { return d.dir }
func (d dirSource) UDID() string { return d.udid }
func (d dirSource) Verify(ctx context.Context) error {
	_, err := d.r.Verify(ctx, d.dir)
	return err
}

// copySource copies the latest backup into a directory of its own, as
// the backup of another phone, so that a test may change it.
func (r *rig) copySource(udid string) dirSource {
	r.t.Helper()
	dst := filepath.Join(r.base, "other", udid)
	if err := os.CopyFS(dst, os.DirFS(r.latest())); err != nil {
		r.t.Fatal(err)
	}
	return dirSource{dir: dst, udid: udid, r: r.repo}
}

const otherUDID = "00008110-000A11112222801E"

// TestRestoreFromAnotherPhone: --source, the way to move to a new phone.
func TestRestoreFromAnotherPhone(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 30}}, testOptions(t))
	r.mustBackup(Target{})
	src := r.copySource(otherUDID)
	if _, err := r.restoreFrom(src, restoreOpts()); err != nil {
		t.Fatal(err)
	}
	rep := requireIntact(t, r.dev, 30)
	if rep.Source != otherUDID || rep.Target != r.dev.UDID() {
		t.Errorf("source %s target %s", rep.Source, rep.Target)
	}
}

// TestRestoreHostile: a phone that asks for paths outside the backup it
// is being restored from gets not one byte of them, and the restore ends
// with protocol_error. The backup restored from is another phone's, so
// "another phone's folder" is the target's own, which is on disk.
func TestRestoreHostile(t *testing.T) {
	for _, mode := range sim.RestoreHostileModes() {
		if mode == "restore-mutate" {
			continue // TestRestoreRefusesChanges
		}
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20}}, testOptions(t))
			r.mustBackup(Target{})
			src := r.copySource(otherUDID)
			before := r.dirHash()
			r.dev.SetFaults(sim.Faults{Hostile: mode})
			res, err := r.restoreFrom(src, restoreOpts())
			if cause.Of(err) != cause.ProtocolError || res.Cause != cause.ProtocolError || !errors.Is(err, ErrHostile) {
				t.Fatalf("hostile %s: %v (%+v), want a refused hostile request", mode, err, res)
			}
			rep := r.dev.CurrentRestore()
			if len(rep.HostileAsked) == 0 {
				t.Fatal("the device asked for nothing hostile")
			}
			if rep.HostileBytes != 0 || res.Bytes != 0 {
				t.Fatalf("the hostile phone got %d bytes (engine sent %d) of %v", rep.HostileBytes, res.Bytes, rep.HostileAsked)
			}
			if r.dirHash() != before {
				t.Fatal("the backup directory changed")
			}
		})
	}
}

// restoreFault is one row of TestRestoreFaults.
type restoreFault struct {
	name       string
	cfg        sim.DeviceConfig
	setup      func(r *rig) RestoreSource // nil: the latest, pinned
	faults     sim.Faults
	opts       func(*RestoreOptions)
	engine     func(*Options)
	want       cause.Code
	deviceCode int
	says       string // in the error
	reached    bool   // the phone got the Restore request
}

// TestRestoreRefusesChanges: a phone that asks, during a restore, to
// remove, move, create, copy or upload files in the backup gets an error
// for each, nothing changes, and the restore goes on.
func TestRestoreRefusesChanges(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 30}}, testOptions(t))
	r.mustBackup(Target{})
	before := r.dirHash()
	r.dev.SetFaults(sim.Faults{Hostile: "restore-mutate"})
	if _, err := r.restore("latest", restoreOpts()); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rep := requireIntact(t, r.dev, 30)
	if rep.MutationsAsked != 5 || rep.MutationsAccepted != 0 {
		t.Fatalf("the phone asked for %d changes and %d were accepted", rep.MutationsAsked, rep.MutationsAccepted)
	}
	if r.dirHash() != before {
		t.Fatal("the backup directory changed")
	}
}

// TestRestoreFaults: each refusal and failure gives its cause before or
// during the restore, and no backup on disk changes by a byte.
func TestRestoreFaults(t *testing.T) {
	// The stall fault strikes after the phone asked for its last file,
	// where phones may think: think_timeout bounds that silence.
	short := func(o *Options) { o.StallTimeout, o.ThinkTimeout = time.Second, 2*time.Second }
	cases := []restoreFault{
		{name: "Find My on (211)", setup: func(r *rig) RestoreSource { r.dev.SetFindMy(true); return nil },
			want: cause.FindMyEnabled, deviceCode: 211, reached: true},
		{name: "second restore without reboot (102)", setup: func(r *rig) RestoreSource {
			if _, err := r.restore("latest", restoreOpts()); err != nil {
				r.t.Fatal(err)
			}
			return nil
		}, want: cause.RestoreNeedsReboot, deviceCode: 102, reached: true},
		{name: "passcode never entered (208)", faults: sim.Faults{PasscodeNeverEntered: true, PasscodeDelay: 200 * time.Millisecond},
			want: cause.PasscodeNotEntered, deviceCode: 208, reached: true},
		{name: "wrong backup password (207)", cfg: sim.DeviceConfig{BackupPassword: "right"},
			opts: func(o *RestoreOptions) { o.Password = "wrong" }, want: cause.WrongBackupPassword, deviceCode: 207, reached: true},
		{name: "encrypted backup without a password", cfg: sim.DeviceConfig{BackupPassword: "right"},
			want: cause.WrongBackupPassword, says: "no password"},
		{name: "unplugged mid-restore", faults: sim.Faults{UnplugAfterBytes: 100 << 10},
			want: cause.Disconnected, says: "restore again", reached: true},
		{name: "unplugged after files", faults: sim.Faults{UnplugAfterFiles: 5},
			want: cause.Disconnected, says: "may hold part of the backup", reached: true},
		{name: "stalled mid-restore", faults: sim.Faults{StallAfterBytes: 60 << 10}, engine: short,
			want: cause.Stalled, says: "restore again", reached: true},
		{name: "sync lock never granted", faults: sim.Faults{LockNeverGranted: true}, want: cause.DeviceBusy},
		{name: "backup from a newer iOS", setup: func(r *rig) RestoreSource {
			src := r.copySource(otherUDID)
			rewritePlist(r.t, filepath.Join(src.dir, "Manifest.plist"), func(m map[string]any) {
				m["Lockdown"].(map[string]any)["ProductVersion"] = "99.1"
			})
			return src
		}, want: cause.IOSTooOld, says: "99.1"},
		{name: "damaged backup", setup: func(r *rig) RestoreSource {
			src := r.copySource(otherUDID)
			ids, _ := filepath.Glob(filepath.Join(src.dir, "??", "*"))
			if len(ids) == 0 || os.Truncate(ids[0], 0) != nil {
				r.t.Fatal("cannot damage the copy")
			}
			return src
		}, want: cause.BackupIncomplete},
		{name: "unfinished backup", setup: func(r *rig) RestoreSource {
			src := r.copySource(otherUDID)
			rewritePlist(r.t, filepath.Join(src.dir, "Status.plist"), func(m map[string]any) { m["SnapshotState"] = "uploading" })
			return src
		}, want: cause.BackupIncomplete, says: "uploading"},
	}
	for _, step := range sim.RestoreSteps() {
		// restore-final too: a step strikes before its messages, so the
		// phone is gone before its Response.
		cases = append(cases, restoreFault{name: "unplugged at " + step, faults: sim.Faults{UnplugAtStep: step}, want: cause.Disconnected, says: "restore again", reached: true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Files = sim.FileSpec{Count: 60, MinSize: 8 << 10, MaxSize: 64 << 10}
			r := newRig(t, cfg, testOptions(t))
			r.mustBackup(Target{})
			if tc.engine != nil {
				// Only the restore gets the engine's special options.
				opts := testOptions(t)
				tc.engine(&opts)
				r.eng = New(r.mux, opts)
			}
			var src RestoreSource
			if tc.setup != nil {
				src = tc.setup(r)
			}
			before := r.dirHash()
			restoresBefore := r.dev.Restores()
			r.dev.SetFaults(tc.faults)
			o := restoreOpts()
			if tc.opts != nil {
				tc.opts(&o)
			}
			var res RestoreResult
			var err error
			if src != nil {
				res, err = r.restoreFrom(src, o)
			} else {
				res, err = r.restore("latest", o)
			}
			var ce *cause.Error
			if !errors.As(err, &ce) || ce.Code != tc.want || res.Cause != tc.want {
				t.Fatalf("error %v (result %+v), want cause %s", err, res, tc.want)
			}
			if res.DeviceErrorCode != tc.deviceCode {
				t.Errorf("device code %d, want %d", res.DeviceErrorCode, tc.deviceCode)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if got := r.dev.CurrentRestore().Target != ""; got != tc.reached && restoresBefore == 0 {
				t.Errorf("the phone got the Restore request: %t, want %t", got, tc.reached)
			}
			if r.dirHash() != before {
				t.Fatal("a backup on disk changed")
			}
			if tc.faults.UnplugAfterBytes > 0 || tc.faults.UnplugAfterFiles > 0 || tc.faults.UnplugAtStep != "" {
				if r.dev.Plugged() {
					t.Error("the unplug never struck")
				}
				r.dev.Plug()
			}
			if tc.want == cause.IOSTooOld || tc.want == cause.BackupIncomplete {
				return
			}
			// The phone takes the restore once the fault is gone.
			r.dev.SetFaults(sim.Faults{})
			r.dev.SetFindMy(false)
			r.dev.Reboot()
			waitUnlocked(t, r.dev)
			o.Password = r.dev.BackupPassword()
			if _, err := r.restore("latest", o); err != nil {
				t.Fatalf("restore after the fault: %v", err)
			}
			requireIntact(t, r.dev, 60)
		})
	}
}

func rewritePlist(t testing.TB, p string, change func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := wire.Decode(b, &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	out, err := wire.Encode(m, wire.Binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreRequestOptions(t *testing.T) {
	tests := []struct {
		name string
		o    RestoreOptions
		want map[string]any
	}{
		{"defaults: what Finder restores", DefaultRestoreOptions(), map[string]any{
			"RestoreSystemFiles": true, "RestoreDontCopyBackup": true, "RestorePreserveSettings": false, "RemoveItemsNotRestored": false}},
		{"keep the phone's settings, no reboot, password", RestoreOptions{KeepPhoneSettings: true, NoReboot: true, CopyBackup: true, Password: "pw"},
			map[string]any{"RestoreSystemFiles": false, "RestoreDontCopyBackup": false, "RestorePreserveSettings": true,
				"RemoveItemsNotRestored": false, "RestoreShouldReboot": false, "Password": "pw"}},
	}
	for _, tt := range tests {
		req := restoreRequest("T", "S", tt.o)
		opts := req["Options"].(map[string]any)
		if req["MessageName"] != "Restore" || req["TargetIdentifier"] != "T" || req["SourceIdentifier"] != "S" || len(opts) != len(tt.want) {
			t.Errorf("%s: %v", tt.name, req)
		}
		for k, v := range tt.want {
			if opts[k] != v {
				t.Errorf("%s: %s = %v, want %v", tt.name, k, opts[k], v)
			}
		}
	}
}

func TestCheckIOS(t *testing.T) {
	tests := []struct {
		phone, backup string
		tooOld        bool
	}{
		{"17.5.1", "17.5.1", false},
		{"17.5.1", "17.5", false},
		{"18.0", "17.5.1", false},
		{"17.5", "17.5.1", true},
		{"16.7.8", "17.0", true},
		{"17.10", "17.9", false},
		{"", "17.0", false},
		{"17.0", "garbage", false},
	}
	for _, tt := range tests {
		err := checkIOS(tt.phone, tt.backup)
		if got := cause.Of(err) == cause.IOSTooOld; got != tt.tooOld {
			t.Errorf("checkIOS(%q, %q) = %v, want too old %t", tt.phone, tt.backup, err, tt.tooOld)
		}
	}
}

// TestRestoreEncrypted: an encrypted backup (a real keybag, Manifest.db
// encrypted with its ManifestKey, a key per file) is restored with its
// password, and the phone, which unlocks the keybag and decrypts every
// file before it hashes it, finds them all intact. With one byte of one
// file's ciphertext changed, the phone names exactly that file; with the
// wrong password it refuses (207) before any file.
func TestRestoreEncrypted(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{BackupPassword: "right", Files: sim.FileSpec{Count: 40, MinSize: 1, MaxSize: 64 << 10}}, testOptions(t))
	r.mustBackup(Target{})
	o := restoreOpts()
	o.Password = "wrong"
	if _, err := r.restore("latest", o); cause.Of(err) != cause.WrongBackupPassword {
		t.Fatalf("restore with the wrong password: %v, want %s", err, cause.WrongBackupPassword)
	}
	if rep := r.dev.LastRestore(); rep.ErrorCode != 207 || rep.Asked != 0 || rep.Bytes != 0 {
		t.Errorf("the phone took files with the wrong password:\n%s", sim.FormatRestoreReport(rep))
	}
	o.Password = "right"
	if _, err := r.restore("latest", o); err != nil {
		t.Fatalf("restore with the password: %v", err)
	}
	if rep := requireIntact(t, r.dev, 40); !rep.HasPassword {
		t.Error("the Restore request carried no password")
	}

	src := r.copySource(otherUDID)
	files, _ := filepath.Glob(filepath.Join(src.dir, "??", "*"))
	var victim string
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Size() >= 32 {
			victim = f
			break
		}
	}
	if victim == "" {
		t.Fatal("no file of two blocks or more in the backup")
	}
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[0] ^= 0xff // same size: the backup still verifies
	if err := os.WriteFile(victim, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r.dev.Reboot()
	waitUnlocked(t, r.dev)
	_, err = r.restoreFrom(src, o)
	rep := r.dev.LastRestore()
	if want := filepath.Base(victim); len(rep.Damaged) != 1 || rep.Damaged[0] != want || rep.Intact != 39 {
		t.Errorf("restore of a backup with %s changed: %v; the phone reports\n%s", want, err, sim.FormatRestoreReport(rep))
	}
}
