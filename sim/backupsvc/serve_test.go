package backupsvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/backupcrypt"
	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/mbfile"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim/fileset"
)

const udid = "00008101-000A1B2C3D4E001E"

// rig is one simulated device and the test host that backs it up.
type rig struct {
	t       *testing.T
	set     *fileset.Set
	stats   *Stats
	enc     *Encryption
	host    *testHost
	unplugs atomic.Int32
	tempDir string
}

func newRig(t *testing.T, spec fileset.Spec) *rig {
	t.Helper()
	set, err := fileset.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, set: set, stats: &Stats{}, enc: NewEncryption(""), host: newTestHost(), tempDir: t.TempDir()}
}

func (r *rig) config(f Faults) Config {
	return Config{
		UDID:       udid,
		Device:     DeviceInfo{DeviceName: "Test iPhone", ProductType: "iPhone14,5", ProductVersion: "17.5.1", BuildVersion: "21F90", SerialNumber: "SIMTEST1"},
		Set:        r.set,
		Stats:      r.stats,
		Encryption: r.enc,
		Faults:     f,
		TempDir:    r.tempDir,
	}
}

// exchange runs one request between Serve and the test host and returns
// both sides' errors.
func (r *rig) exchange(req map[string]any, f Faults) (hostErr, serveErr error) {
	r.t.Helper()
	dev, hc := connPair(r.t)
	cfg := r.config(f)
	cfg.Unplug = func() {
		r.unplugs.Add(1)
		dev.Close() // what the simulator core does to every connection
	}
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), dev, cfg) }()
	hostErr = r.host.run(hc, req)
	select {
	case serveErr = <-done:
	case <-time.After(30 * time.Second):
		r.t.Fatal("Serve did not return after the host hung up")
	}
	return hostErr, serveErr
}

func backupReq(force bool) map[string]any {
	req := map[string]any{"MessageName": "Backup", "TargetIdentifier": udid, "SourceIdentifier": udid}
	if force {
		req["Options"] = map[string]any{"ForceFullBackup": true}
	}
	return req
}

// mustBackup runs a backup that must succeed.
func (r *rig) mustBackup(force bool) {
	r.t.Helper()
	hostErr, serveErr := r.exchange(backupReq(force), Faults{})
	if hostErr != nil || serveErr != nil {
		r.t.Fatalf("backup: host %v, device %v", hostErr, serveErr)
	}
	if c := r.host.finalCode(); c != 0 {
		r.t.Fatalf("final ErrorCode %d: %v", c, r.host.final)
	}
}

// checkTree verifies the host's backup against the device's files.
func (r *rig) checkTree() {
	t := r.t
	t.Helper()
	h := r.host
	for _, name := range []string{"Manifest.db", "Manifest.plist", "Status.plist"} {
		if _, ok := h.files[udid+"/"+name]; !ok {
			t.Fatalf("backup lacks %s; tree: %v", name, h.tree())
		}
	}
	want := map[string]fileset.File{}
	for _, f := range r.set.Files() {
		if !f.Deleted {
			want[udid+"/"+f.BackupPath()] = f
		}
	}
	keys := r.unlock()
	manifestDB := h.files[udid+"/Manifest.db"]
	if keys != nil {
		manifestDB = r.decrypt(manifestDB, keys.manifest, -1)
	}
	fileKeys := map[string][]byte{} // data path → content key

	// Manifest.db lists exactly the device's files and directories.
	dbPath := filepath.Join(t.TempDir(), "Manifest.db")
	if err := os.WriteFile(dbPath, manifestDB, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT fileID, domain, relativePath, flags, file FROM Files`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	files, dirs := 0, 0
	for rows.Next() {
		var id, domain, rel string
		var flags int64
		var blob []byte
		if err := rows.Scan(&id, &domain, &rel, &flags, &blob); err != nil {
			t.Fatal(err)
		}
		if id != fileset.FileID(domain, rel) {
			t.Fatalf("row %s: fileID does not match %s-%s", id, domain, rel)
		}
		e, err := parseMBFile(blob)
		if err != nil {
			t.Fatalf("row %s: %v", id, err)
		}
		rec, _ := mbfile.Decode(blob)
		if (keys != nil && flags == flagFile) != (rec.EncryptionKey != nil) {
			t.Fatalf("row %s (flags %d): EncryptionKey %x; backup encrypted: %v", id, flags, rec.EncryptionKey, keys != nil)
		}
		if rec.EncryptionKey != nil {
			k, err := keys.classes.Unwrap(rec.EncryptionKey)
			if err != nil {
				t.Fatalf("row %s: %v", id, err)
			}
			fileKeys[udid+"/"+fileset.BackupPath(id)] = k
		}
		switch flags {
		case flagFile:
			files++
			f, ok := want[udid+"/"+fileset.BackupPath(id)]
			if !ok {
				t.Fatalf("Manifest.db lists %s, which the device does not have", id)
			}
			if e.size != f.Size || e.generation != f.Generation || e.mtime != f.ModTime.Unix() {
				t.Fatalf("row %s: %+v, device has size %d gen %d", id, e, f.Size, f.Generation)
			}
		case flagDir:
			dirs++
		default:
			t.Fatalf("row %s: flags %d", id, flags)
		}
	}
	if files != len(want) || dirs != len(r.set.Dirs()) {
		t.Fatalf("Manifest.db lists %d files and %d directories, want %d and %d", files, dirs, len(want), len(r.set.Dirs()))
	}

	data := 0
	for _, p := range h.tree() {
		if strings.Contains(p, "Snapshot") {
			t.Fatalf("leftover %s", p)
		}
		if !isDataPath(p) {
			continue
		}
		data++
		f, ok := want[p]
		if !ok {
			t.Fatalf("backup holds %s, which the device does not have", p)
		}
		content := h.files[p]
		if keys != nil {
			content = r.decrypt(content, fileKeys[p], f.Size)
		}
		if sha256.Sum256(content) != fileset.Hash(f) {
			t.Fatalf("%s: content differs from the device's (gen %d)", p, f.Generation)
		}
	}
	if data != len(want) {
		t.Fatalf("backup holds %d data files, device has %d", data, len(want))
	}

	var status map[string]any
	if err := wire.Decode(h.files[udid+"/Status.plist"], &status); err != nil {
		t.Fatal(err)
	}
	if !wire.IsBinary(h.files[udid+"/Status.plist"]) {
		t.Error("Status.plist is not binary")
	}
	if status["SnapshotState"] != "finished" || status["Version"] != "3.3" || status["UUID"] != r.stats.LastSnapshot() {
		t.Fatalf("Status.plist %v (device remembers %s)", status, r.stats.LastSnapshot())
	}
	if full, _ := status["IsFullBackup"].(bool); full != r.stats.Last().Full {
		t.Fatalf("Status.plist IsFullBackup %v, stats say %v", full, r.stats.Last().Full)
	}
}

// hostKeys are what a reader of the host's encrypted backup unlocks
// with the password.
type hostKeys struct {
	classes  *backupcrypt.ClassKeys
	manifest []byte // Manifest.db's key
}

// unlock opens the host's backup as a reader would, from Manifest.plist
// and the password alone; nil for a plain backup.
func (r *rig) unlock() *hostKeys {
	t := r.t
	t.Helper()
	var mp struct {
		IsEncrypted  bool
		BackupKeyBag []byte
		ManifestKey  []byte
	}
	if err := wire.Decode(r.host.files[udid+"/Manifest.plist"], &mp); err != nil {
		t.Fatal(err)
	}
	if !mp.IsEncrypted {
		return nil
	}
	kb, err := backupcrypt.ParseKeybag(mp.BackupKeyBag)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kb.Unlock(context.Background(), []byte(r.enc.Password()+"x")); err != backupcrypt.ErrWrongPassword {
		t.Fatalf("keybag unlocked with a wrong password: %v", err)
	}
	ck, err := kb.Unlock(context.Background(), []byte(r.enc.Password()))
	if err != nil {
		t.Fatal(err)
	}
	mk, err := ck.Unwrap(mp.ManifestKey)
	if err != nil {
		t.Fatal(err)
	}
	return &hostKeys{classes: ck, manifest: mk}
}

func (r *rig) decrypt(ct, key []byte, size int64) []byte {
	r.t.Helper()
	d, err := backupcrypt.NewDecrypter(bytes.NewReader(ct), key, size)
	if err != nil {
		r.t.Fatal(err)
	}
	plain, err := io.ReadAll(d)
	if err != nil {
		r.t.Fatalf("decrypt: %v", err)
	}
	return plain
}

func TestFullBackup(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 1, Files: 60, MinSize: 0, MaxSize: 200 << 10})
	r.mustBackup(true)
	r.checkTree()
	last := r.stats.Last()
	if !last.Full || last.Files != 60 || last.Bytes != r.set.TotalSize() || last.Removed != 0 {
		t.Fatalf("report %+v, want full with 60 files and %d bytes", last, r.set.TotalSize())
	}
	if r.stats.BackupsCompleted.Load() != 1 || r.stats.FilesSent.Load() != 60 {
		t.Fatalf("totals: %d backups, %d files", r.stats.BackupsCompleted.Load(), r.stats.FilesSent.Load())
	}
	// The order a real device uses; prefix directories make several
	// CreateDirectory messages. The device lists the backup folder and
	// Snapshot at the start, every xx/ folder at the end.
	want := []string{devicelink.MsgDownloadFiles, devicelink.MsgContentsOfDir, devicelink.MsgContentsOfDir,
		devicelink.MsgGetFreeDiskSpace, devicelink.MsgCreateDirectory}
	if !slices.Equal(r.host.msgs[:5], want) {
		t.Fatalf("messages start %v", r.host.msgs[:5])
	}
	tail := compact(r.host.msgs)
	wantTail := []string{devicelink.MsgDownloadFiles, devicelink.MsgContentsOfDir, devicelink.MsgGetFreeDiskSpace, devicelink.MsgCreateDirectory,
		devicelink.MsgUploadFiles, devicelink.MsgMoveItems, devicelink.MsgRemoveItems, devicelink.MsgContentsOfDir,
		devicelink.MsgUploadFiles, devicelink.MsgProcessMessage}
	if !slices.Equal(tail, wantTail) {
		t.Fatalf("message sequence %v, want %v", tail, wantTail)
	}
	if slices.Contains(r.host.msgs, devicelink.MsgPurgeDiskSpace) {
		t.Fatal("the device sent DLMessagePurgeDiskSpace, which idevicebackup2 cannot answer")
	}
	var mp map[string]any
	if err := wire.Decode(r.host.files[udid+"/Manifest.plist"], &mp); err != nil {
		t.Fatal(err)
	}
	lockdown, _ := mp["Lockdown"].(map[string]any)
	if mp["IsEncrypted"] != false || lockdown["UniqueDeviceID"] != udid || lockdown["ProductVersion"] != "17.5.1" {
		t.Fatalf("Manifest.plist %v", mp)
	}
	if _, ok := mp["BackupKeyBag"]; ok {
		t.Fatal("unencrypted Manifest.plist has a BackupKeyBag")
	}
}

// compact drops consecutive repeats.
func compact(s []string) []string { return slices.Compact(slices.Clone(s)) }

func TestIncrementalSendsOnlyChanges(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 2, Files: 400, MinSize: 1, MaxSize: 64 << 10})
	r.mustBackup(true)
	r.checkTree()

	changed := r.set.Mutate(0.01, 99)
	gone := r.set.Delete(0.005, 98)
	if len(changed) != 4 || len(gone) != 2 {
		t.Fatalf("mutated %d, deleted %d", len(changed), len(gone))
	}
	r.host.uploaded = nil
	r.mustBackup(false)
	r.checkTree()
	last := r.stats.Last()
	if last.Full || last.Files != len(changed) || last.Removed != len(gone) {
		t.Fatalf("incremental report %+v, want %d files sent and %d removed", last, len(changed), len(gone))
	}
	var wantUp []string
	for _, i := range changed {
		wantUp = append(wantUp, udid+"/Snapshot/"+r.set.File(i).BackupPath())
	}
	var gotUp []string
	for _, p := range r.host.uploaded {
		if isDataPath(p) {
			gotUp = append(gotUp, p)
		}
	}
	slices.Sort(wantUp)
	slices.Sort(gotUp)
	if !slices.Equal(gotUp, wantUp) {
		t.Fatalf("uploaded %v, want the mutated %v", gotUp, wantUp)
	}

	// Nothing changed: nothing but the manifests is sent.
	r.host.uploaded = nil
	r.mustBackup(false)
	r.checkTree()
	if last := r.stats.Last(); last.Full || last.Files != 0 {
		t.Fatalf("unchanged device sent %+v", last)
	}

	// Forced full even though the host's backup is current.
	r.mustBackup(true)
	r.checkTree()
	if last := r.stats.Last(); !last.Full || last.Files != 398 {
		t.Fatalf("forced full backup %+v", last)
	}

	// A device that forgot its snapshot (restored phone) starts over.
	r.stats.Forget()
	r.mustBackup(false)
	if last := r.stats.Last(); !last.Full {
		t.Fatalf("backup after Forget was not full: %+v", last)
	}
}

func TestIncrementalFallsBackToFull(t *testing.T) {
	tests := []struct {
		name     string
		damage   func(h *testHost)
		wantCode int64
		wantFull bool
	}{
		{"status of another snapshot", func(h *testHost) {
			h.files[udid+"/Status.plist"], _ = statusPlist("11111111-2222-4333-8444-555555555555", true, time.Now())
		}, 0, true},
		{"unfinished snapshot", func(h *testHost) {
			var m map[string]any
			wire.Decode(h.files[udid+"/Status.plist"], &m)
			m["SnapshotState"] = "uploading"
			h.files[udid+"/Status.plist"], _ = wire.Encode(m, wire.Binary)
		}, 0, true},
		{"missing Manifest.db", func(h *testHost) { delete(h.files, udid+"/Manifest.db") }, 0, true},
		{"garbage Manifest.db", func(h *testHost) { h.files[udid+"/Manifest.db"] = []byte("not sqlite") }, 0, true},
		{"missing Manifest.plist", func(h *testHost) { delete(h.files, udid+"/Manifest.plist") }, 0, true},
		{"corrupt Manifest.plist", func(h *testHost) { h.files[udid+"/Manifest.plist"] = []byte{} }, CodeCorruptManifest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, fileset.Spec{Seed: 3, Files: 30, MaxSize: 4 << 10})
			r.mustBackup(true)
			tt.damage(r.host)
			hostErr, serveErr := r.exchange(backupReq(false), Faults{})
			if hostErr != nil || serveErr != nil {
				t.Fatalf("host %v, device %v", hostErr, serveErr)
			}
			if c := r.host.finalCode(); c != tt.wantCode {
				t.Fatalf("final ErrorCode %d, want %d (%v)", c, tt.wantCode, r.host.final)
			}
			if tt.wantCode != 0 {
				return
			}
			r.checkTree()
			if last := r.stats.Last(); last.Full != tt.wantFull || last.Files != 30 {
				t.Fatalf("report %+v", last)
			}
		})
	}
}

func TestEncryptionChangeForcesFull(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 4, Files: 20, MaxSize: 1000})
	r.mustBackup(true)
	r.enc.SetPassword("secret")
	r.mustBackup(false)
	if last := r.stats.Last(); !last.Full || !last.Encrypted {
		t.Fatalf("backup after enabling encryption: %+v", last)
	}
	var mp map[string]any
	if err := wire.Decode(r.host.files[udid+"/Manifest.plist"], &mp); err != nil {
		t.Fatal(err)
	}
	if mp["IsEncrypted"] != true || mp["BackupKeyBag"] == nil || mp["ManifestKey"] == nil {
		t.Fatalf("encrypted Manifest.plist %v", mp)
	}
	r.checkTree()
	r.mustBackup(false)
	if last := r.stats.Last(); last.Full || last.Files != 0 {
		t.Fatalf("second encrypted backup: %+v", last)
	}
	// An incremental encrypted backup: the unchanged files the host keeps
	// still open with the keys the new Manifest.db records.
	changed := r.set.Mutate(0.25, 9)
	r.enc.SetPassword("another secret")
	r.mustBackup(false)
	if last := r.stats.Last(); last.Full || last.Files != len(changed) {
		t.Fatalf("incremental encrypted backup after %d changes: %+v", len(changed), last)
	}
	r.checkTree()
}

func TestChangePassword(t *testing.T) {
	tests := []struct {
		name     string
		current  string
		req      map[string]any
		wantCode int64
		wantPW   string
	}{
		{"enable", "", map[string]any{"NewPassword": "pw"}, 0, "pw"},
		{"disable", "pw", map[string]any{"OldPassword": "pw"}, 0, ""},
		{"change", "pw", map[string]any{"OldPassword": "pw", "NewPassword": "new"}, 0, "new"},
		{"wrong old password", "pw", map[string]any{"OldPassword": "nope"}, CodeWrongPassword, "pw"},
		{"change with wrong old", "pw", map[string]any{"OldPassword": "nope", "NewPassword": "x"}, CodeWrongPassword, "pw"},
		{"enable when enabled", "pw", map[string]any{"NewPassword": "x"}, CodeWrongPassword, "pw"},
		{"disable when disabled", "", map[string]any{"OldPassword": "x"}, CodeHostFailure, ""},
		{"nothing", "", map[string]any{}, CodeHostFailure, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, fileset.Spec{Seed: 5, Files: 1})
			r.enc.SetPassword(tt.current)
			req := map[string]any{"MessageName": "ChangePassword", "TargetIdentifier": udid}
			for k, v := range tt.req {
				req[k] = v
			}
			hostErr, serveErr := r.exchange(req, Faults{})
			if hostErr != nil || serveErr != nil {
				t.Fatalf("host %v, device %v", hostErr, serveErr)
			}
			if c := r.host.finalCode(); c != tt.wantCode {
				t.Fatalf("ErrorCode %d, want %d", c, tt.wantCode)
			}
			if len(r.host.msgs) != 1 {
				t.Fatalf("messages %v, want only the final Response", r.host.msgs)
			}
			if got := r.enc.Password(); got != tt.wantPW {
				t.Fatalf("password %q, want %q", got, tt.wantPW)
			}
			if r.enc.WillEncrypt() != (tt.wantPW != "") {
				t.Fatal("WillEncrypt disagrees with the password")
			}
		})
	}
}

func TestUnsupportedRequest(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 5, Files: 1})
	hostErr, serveErr := r.exchange(map[string]any{"MessageName": "Unback", "TargetIdentifier": udid}, Faults{})
	if hostErr != nil || serveErr != nil {
		t.Fatalf("host %v, device %v", hostErr, serveErr)
	}
	if c := r.host.finalCode(); c != CodeUnsupported {
		t.Fatalf("ErrorCode %d", c)
	}
}
