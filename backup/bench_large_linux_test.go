package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// benchLargeEnv=N runs BenchmarkLargePhone with a phone of N files (a
// real phone reaches a million files and a Manifest.db of 1.5 GB):
// scripts/bench-large.sh sets it; plain `go test -bench` skips it.
const benchLargeEnv = "BACKUPD_BENCH_LARGE"

// benchVerifyEnv makes the child verify the backup at BENCH_DIR/<udid>
// instead of running one.
const benchVerifyEnv = "BENCH_VERIFY"

// verifyChild verifies the latest backup of BENCH_UDID and prints a
// childResult whose Files counts the files checked.
func verifyChild(r *repo.Repo) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	rep, err := r.Verify(ctx, filepath.Join(os.Getenv("BENCH_DIR"), os.Getenv("BENCH_UDID")))
	return printChild(childResult{VmHWM: vmHWM(os.Getpid()), Result: Result{Files: int64(rep.FilesPresent)}}, err)
}

// BenchmarkLargePhone: a phone of BACKUPD_BENCH_LARGE files of 1-16
// bytes. One full backup, an incremental after 0.1% of the files
// changed, and a verify of the result, each in a process of its own;
// per phase the wall time, CPU and peak RSS.
func BenchmarkLargePhone(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv(benchLargeEnv))
	if n <= 0 {
		b.Skipf("set %s=<files> (scripts/bench-large.sh) for the large phone", benchLargeEnv)
	}
	spec := sim.FileSpec{Seed: 42, Count: n, MinSize: 1, MaxSize: 16}
	start := time.Now()
	s, devs := simtest.StartT(b, sim.DeviceConfig{Files: spec})
	b.Logf("the simulated phone is ready after %v", time.Since(start).Round(time.Millisecond))
	w := &workload{sim: s, devs: devs}
	// The simulator, not a phone, builds Manifest.db at the end of the
	// transfer: a million rows take it longer than the default stall
	// timeout on a loaded machine.
	b.Setenv("BENCH_STALL", "15m")
	logs := b.TempDir()
	for b.Loop() {
		dir := b.TempDir()
		b.Setenv(benchLogEnv, filepath.Join(logs, "full.log"))
		full, res := w.engine(b, dir, true)
		report(b, "full", full, res.Files)
		printPhases(b, filepath.Join(logs, "full.log"))
		changed := devs[0].Mutate(0.001)
		b.Setenv(benchLogEnv, filepath.Join(logs, "incremental.log"))
		incr, res := w.engine(b, dir, false)
		report(b, "incremental", incr, res.Files)
		printPhases(b, filepath.Join(logs, "incremental.log"))
		if res.Files != int64(changed) {
			b.Logf("incremental: %d files received, %d changed", res.Files, changed)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), benchChildEnv+"="+w.sim.Address(), "BENCH_UDID="+devs[0].UDID(), "BENCH_DIR="+dir, benchVerifyEnv+"=1", benchLogEnv+"=")
		m := runMeasured(b, cmd)
		var vr childResult
		if err := json.Unmarshal([]byte(m.out), &vr); err != nil || vr.Err != "" {
			b.Fatalf("verify: %v %s\n%s", err, vr.Err, m.out)
		}
		m.maxRSS = max(m.maxRSS, vr.VmHWM)
		report(b, "verify", m, vr.Files)
		if st, err := os.Stat(filepath.Join(dir, devs[0].UDID(), "Manifest.db")); err == nil {
			b.ReportMetric(float64(st.Size())/(1<<20), "manifest-MiB")
		}
		os.RemoveAll(dir)
	}
}

// printPhases prints a backup's steps and their times from its debug
// log (the "backup phase" lines of phases.go), and what else it said
// above debug level, such as the engine waiting on a quiet phone.
func printPhases(b *testing.B, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		_, msg, ok := strings.Cut(line, " msg=")
		if ok && (strings.Contains(line, "level=DEBUG msg=\"backup phase\"") || !strings.Contains(line, "level=DEBUG")) {
			fields := strings.Fields(msg)
			fields = slices.DeleteFunc(fields, func(f string) bool { return strings.HasPrefix(f, "udid=") })
			fmt.Fprintf(os.Stderr, "    %s\n", strings.Join(fields, " "))
		}
	}
}

// report puts one phase's figures under its name.
func report(b *testing.B, phase string, m measured, files int64) {
	b.ReportMetric(m.wall.Seconds(), phase+"-s")
	b.ReportMetric((m.user + m.sys).Seconds(), phase+"-cpu-s")
	b.ReportMetric(float64(m.maxRSS)/(1<<20), phase+"-maxrss-MiB")
	b.ReportMetric(float64(files), phase+"-files")
	fmt.Fprintf(os.Stderr, "large phone: %-12s %8.1f s  CPU %7.1f s  peak RSS %6.1f MiB  %d files\n", phase, m.wall.Seconds(), (m.user + m.sys).Seconds(), float64(m.maxRSS)/(1<<20), files)
}
