package backup

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim"
)

// TestUnreadableFilesKept: a file the iPhone could not read comes as an
// error block alone while the backup ends with ErrorCode 0. The backup is
// kept, with the list of those files in it and in the Result, and it
// verifies; the next backup, in which the phone sends them again, is
// whole and drops the list. ErrorCode 104 fails the backup with cause
// device_upload_errors, naming the files too.
func TestUnreadableFilesKept(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 30}}, testOptions(t))
	r.dev.SetFaults(sim.Faults{UnreadableFiles: 2})
	res, err := r.run(Target{Repo: r.target, ForceFull: true})
	if err != nil {
		t.Fatalf("a backup the iPhone called successful was not kept: %v", err)
	}
	if res.UnreadableCount != 2 || len(res.Unreadable) != 2 {
		t.Fatalf("result lists %d of %d unreadable files, want 2: %+v", len(res.Unreadable), res.UnreadableCount, res.Unreadable)
	}
	for _, u := range res.Unreadable {
		if u.Name == "" || !strings.HasPrefix(u.Path, r.dev.UDID()+"/Snapshot/") || u.FileID() == "" || u.Message != "Input/output error" {
			t.Errorf("unreadable file %+v", u)
		}
	}
	b, err := os.ReadFile(filepath.Join(r.latest(), repo.UnreadableName))
	if err != nil {
		t.Fatalf("the backup does not record its unreadable files: %v", err)
	}
	var list repo.UnreadableList
	if err := json.Unmarshal(b, &list); err != nil || list.Count != 2 || len(list.Files) != 2 {
		t.Fatalf("recorded list %s (%v)", b, err)
	}
	rep, err := r.repo.Verify(testCtx(t), r.latest())
	if err != nil || rep.Unreadable != 2 {
		t.Fatalf("the kept backup does not verify: %v (%+v)", err, rep)
	}

	// The phone can read them again: it sends them and the list goes.
	r.dev.SetFaults(sim.Faults{})
	res = r.mustBackup(Target{Repo: r.target})
	// The 2 files, Manifest.db, Manifest.plist and Status.plist.
	if res.Full || res.UnreadableCount != 0 || res.Files != 5 {
		t.Fatalf("next backup %+v, want an incremental one sending the 2 files again", res)
	}
	if _, err := os.Stat(filepath.Join(r.latest(), repo.UnreadableName)); !os.IsNotExist(err) {
		t.Errorf("the list of unreadable files outlived them: %v", err)
	}
	checkMatchesDevice(t, r.latest(), r.dev)

	// 104: the phone says the backup failed.
	good := r.latestHash()
	r.dev.SetFaults(sim.Faults{UnreadableFiles: 3, ErrorCode: 104})
	res, err = r.run(Target{Repo: r.target, ForceFull: true})
	if err == nil || res.Cause != cause.DeviceUploadErrors || res.DeviceErrorCode != 104 {
		t.Fatalf("ErrorCode 104: cause %s (%d), err %v; want device_upload_errors", res.Cause, res.DeviceErrorCode, err)
	}
	if res.UnreadableCount != 3 {
		t.Errorf("a failed run names %d unreadable files, want 3", res.UnreadableCount)
	}
	if r.latestHash() != good {
		t.Error("the failed backup changed the last good one")
	}
}

// TestUnreadableFilesNotCounted: a file the iPhone could not read (an
// error block alone) is not a file received: Result.Files is that of the
// same backup without the fault, less the unreadable ones.
func TestUnreadableFilesNotCounted(t *testing.T) {
	cfg := sim.DeviceConfig{Files: sim.FileSpec{Count: 30}}
	whole := newRig(t, cfg, testOptions(t)).mustBackup(Target{ForceFull: true})
	r := newRig(t, cfg, testOptions(t))
	r.dev.SetFaults(sim.Faults{UnreadableFiles: 2})
	res, err := r.run(Target{Repo: r.target, ForceFull: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.UnreadableCount != 2 || res.Files != whole.Files-2 {
		t.Fatalf("files %d with %d unreadable, want %d (%d without the fault, less 2)", res.Files, res.UnreadableCount, whole.Files-2, whole.Files)
	}
}
