package backup

import (
	"testing"

	"github.com/backupd/backupd/sim"
)

// TestListingsAgreeWithDevice: the simulated iPhone, like a real one,
// lists the backup folder and Snapshot at the start and every xx/ folder
// at the end, and fails the backup with 205 when a listing disagrees with
// what it knows the host holds: sizes, 0-byte files (many here), a
// missing folder. A full and an incremental backup pass its checks.
func TestListingsAgreeWithDevice(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 120, MinSize: 0, MaxSize: 40, Empty: true}}, testOptions(t))
	r.mustBackup(Target{Repo: r.target, ForceFull: true})
	st := r.dev.BackupStats()
	if st.DirsChecked < 3 || st.FilesSent != 120 {
		t.Fatalf("stats %+v: want the listings checked and 120 files sent", st)
	}
	checkMatchesDevice(t, r.latest(), r.dev)
	r.dev.Mutate(0.1)
	r.mustBackup(Target{Repo: r.target})
	if st := r.dev.BackupStats(); st.LastFull || st.DirsChecked < 3 {
		t.Fatalf("stats %+v: want an incremental backup with its listings checked", st)
	}
	checkMatchesDevice(t, r.latest(), r.dev)
}
