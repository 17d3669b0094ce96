package backup

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/usbmux"
)

// The restore benchmarks compare the engine's restore (the checks, the
// verify of the backup, the transfer) with Debian's "idevicebackup2
// restore --system --settings --no-reboot" on W1 and W2: each tool
// restores a full backup of its own device, the two devices holding the
// same files, and the simulator checks every file it receives. The
// figures are those of the backup benchmarks (bench_linux_test.go);
// scripts/bench-compare.sh runs them (make bench-compare).

// benchRestoreEnv=1 makes the bench child restore instead of back up.
const benchRestoreEnv = "BENCH_RESTORE"

// restoreChild restores the latest backup in r onto dev, as backupd
// does: the options of `backupd restore --no-reboot`.
func restoreChild(ctx context.Context, mux *usbmux.Client, dev usbmux.Device, r *repo.Repo) int {
	pin, err := r.Pin(dev.UDID, repo.LatestName)
	if err != nil {
		return childFail(err)
	}
	defer pin.Release()
	o := DefaultRestoreOptions()
	o.NoReboot = true
	res, err := New(mux, Options{}).Restore(ctx, dev, RestoreTarget{Source: FromPin(r, pin), Options: o})
	out := childResult{Result: Result{UDID: res.UDID, Bytes: res.Bytes, Files: res.Files}, VmHWM: vmHWM(os.Getpid())}
	if err != nil {
		out.Err = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		return 2
	}
	if err != nil {
		return 1
	}
	return 0
}

func childFail(err error) int {
	json.NewEncoder(os.Stdout).Encode(childResult{Err: err.Error()})
	return 1
}

// restoreEngine runs the engine's restore of the backup in dir in a
// child process.
func (w *workload) restoreEngine(b *testing.B, dir string) (measured, Result) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+w.sim.Address(), "BENCH_UDID="+w.devs[0].UDID(), "BENCH_DIR="+dir, benchRestoreEnv+"=1")
	m := runMeasured(b, cmd)
	var res childResult
	if err := json.Unmarshal([]byte(m.out), &res); err != nil || res.Err != "" {
		b.Fatalf("engine restore: %v %s\n%s", err, res.Err, m.out)
	}
	m.maxRSS = max(m.maxRSS, res.VmHWM)
	return m, res.Result
}

// restoreIdevicebackup2 runs idevicebackup2's restore of the backup in
// dir (which holds <UDID>/).
func (w *workload) restoreIdevicebackup2(b *testing.B, dir string) measured {
	b.Helper()
	cmd := exec.Command(w.ib2, "-u", w.devs[1].UDID(), "restore", "--system", "--settings", "--no-reboot", dir)
	cmd.Env = append(os.Environ(), "USBMUXD_SOCKET_ADDRESS="+w.sim.Address())
	m := runMeasured(b, cmd)
	if !strings.Contains(m.out, "Restore Successful.") {
		b.Fatalf("idevicebackup2 restore:\n%s", m.out)
	}
	return m
}

// requireRestored checks the device got every file of the backup intact.
func requireRestored(b *testing.B, d *sim.Device, files int) {
	b.Helper()
	rep := d.LastRestore()
	if !rep.Done || rep.ErrorCode != 0 || rep.Asked != files || rep.Intact != files {
		b.Fatalf("%s did not get every file intact:\n%s", d.UDID(), sim.FormatRestoreReport(rep))
	}
}

// benchRestore makes a full backup with each tool once, then restores it
// once per b.N with each, alternating which goes first; each device is
// restarted before its restore, since a phone takes one restore per
// start.
func benchRestore(b *testing.B, spec sim.FileSpec) {
	w := newWorkload(b, spec)
	ours, theirs := b.TempDir(), b.TempDir()
	w.engine(b, ours, true)
	w.idevicebackup2(b, theirs, true)
	if _, err := os.Stat(filepath.Join(theirs, w.devs[1].UDID(), "Manifest.db")); err != nil {
		b.Fatal(err)
	}
	var eng, ib toolFigures
	var bytes int64
	rounds := 0
	for b.Loop() {
		rounds++
		w.devs[0].Reboot()
		w.devs[1].Reboot()
		waitPlugged(b, w.devs[0], w.devs[1])
		var e, i measured
		var res Result
		if rounds%2 == 1 {
			e, res = w.restoreEngine(b, ours)
			i = w.restoreIdevicebackup2(b, theirs)
		} else {
			i = w.restoreIdevicebackup2(b, theirs)
			e, res = w.restoreEngine(b, ours)
		}
		requireRestored(b, w.devs[0], spec.Count)
		requireRestored(b, w.devs[1], spec.Count)
		eng.add(e)
		ib.add(i)
		bytes = res.Bytes
	}
	files := int64(spec.Count)
	b.ReportMetric(float64(files), "files")
	b.ReportMetric(float64(bytes)/(1<<20), "MiB")
	eng.report(b, "backupd", bytes, files)
	ib.report(b, "idevicebackup2", bytes, files)
	b.ReportMetric(ratio(&eng, &ib), "ratio")
	b.ReportMetric(float64(bytes)/float64(1<<20)/median(eng.wall).Seconds(), "backupd-MiB/s")
}

// waitPlugged waits for restarted devices to be back and unlocked.
func waitPlugged(b *testing.B, devs ...*sim.Device) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, d := range devs {
		for !d.Plugged() || d.SyncLocked() {
			if time.Now().After(deadline) {
				b.Fatalf("%s did not come back from its restart", d.UDID())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// BenchmarkRestoreW1: restore the full backup of W1 (20 000 files of
// 1–64 KiB).
func BenchmarkRestoreW1(b *testing.B) {
	benchRestore(b, sim.FileSpec{Count: 20000, MinSize: 1 << 10, MaxSize: 64 << 10})
}

// BenchmarkRestoreW2: restore the full backup of W2 (8 files of 256 MiB).
func BenchmarkRestoreW2(b *testing.B) {
	benchRestore(b, sim.FileSpec{Count: 8, MinSize: 256 << 20, MaxSize: 256 << 20})
}
