package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
	"github.com/backupd/backupd/usbmux"
)

// The benchmarks compare the whole engine (repo.Begin's clone, the
// transfer, repo.Commit's verify, fsync and swap) with Debian's
// idevicebackup2 on the same workload, each in its own process so that
// peak RSS is that process's alone. Two simulated devices with the same
// seed hold identical files (and mutate identically), one per tool, so
// each sees the same backup and its own incremental state.
//
// Figures reported per benchmark:
//
//	backupd-s, idevicebackup2-s  wall time of one backup, process start to exit
//	ratio                        backupd-s / idevicebackup2-s (< 1: backupd faster)
//	backupd-MiB/s                content rate of backupd
//	backupd-maxrss-MiB, idevicebackup2-maxrss-MiB  peak RSS: VmHWM of the
//	                             process, sampled from /proc/<pid>/status every
//	                             10 ms, and read by the engine itself at its end
//	                             (ru_maxrss is useless here: after vfork+exec
//	                             Linux carries the parent's high-water mark
//	                             into the child's)
//	sim-discard-MiB/s            the simulator feeding a host that discards
//	                             everything: the ceiling for any host here
//
// Before each measured run everything dirty is written out (sync), so
// that neither tool pays for the other's data, and the order of the two
// tools alternates between rounds. scripts/bench-compare.sh runs them
// (make bench-compare).

const (
	benchChildEnv = "BACKUPD_BENCH_CHILD"
	// benchCompareEnv=1 enables the comparison: it takes minutes and a
	// few GiB, so plain `make bench` skips it.
	benchCompareEnv = "BACKUPD_BENCH_COMPARE"
)

// TestMain lets the test binary run the engine as a child process.
func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) != "" {
		os.Exit(benchChild())
	}
	os.Exit(m.Run())
}

// childResult is what the child prints.
type childResult struct {
	Result
	Err string
	// VmHWM is the child's own peak RSS, in bytes, read at its end.
	VmHWM int64
}

// benchChild runs one backup: BACKUPD_BENCH_CHILD=<usbmuxd address>,
// BENCH_UDID, BENCH_DIR, BENCH_FULL=1 to force a full backup,
// BENCH_MEMPROFILE=path for the allocation profile of the backup;
// BENCH_RESTORE=1 restores the latest backup instead (restoreChild).
func benchChild() int {
	addr, err := usbmux.ParseAddr(os.Getenv(benchChildEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	mux := usbmux.NewClient(usbmux.Config{Addr: addr})
	list, err := mux.ListDevices(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var dev usbmux.Device
	for _, d := range list {
		if d.UDID == os.Getenv("BENCH_UDID") {
			dev = d
		}
	}
	log, closeLog, err := benchLogger()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer closeLog()
	r, err := repo.Open(os.Getenv("BENCH_DIR"), repo.Options{KeepLast: 1, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer r.Close()
	if os.Getenv(benchRestoreEnv) == "1" {
		return restoreChild(ctx, mux, dev, r)
	}
	if os.Getenv(benchVerifyEnv) == "1" {
		return verifyChild(r)
	}
	opts := Options{Logger: log}
	// The large phone's simulator takes minutes to build a Manifest.db
	// of a million rows, silent meanwhile (bench_large_linux_test.go).
	if d, err := time.ParseDuration(os.Getenv("BENCH_STALL")); err == nil {
		opts.StallTimeout = d
	}
	res, err := New(mux, opts).Run(ctx, dev, Target{Repo: FromRepo(r), ForceFull: os.Getenv("BENCH_FULL") == "1"})
	if err == nil {
		err = writeAllocProfile(os.Getenv("BENCH_MEMPROFILE"))
	}
	return printChild(childResult{Result: res, VmHWM: vmHWM(os.Getpid())}, err)
}

// writeAllocProfile writes where the backup allocated to path, when set
// (go tool pprof -sample_index=alloc_space reads it).
func writeAllocProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// printChild prints a child's result for its parent, err included, and
// returns the child's exit code.
func printChild(out childResult, err error) int {
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

// benchLogEnv names a file for the child's debug log (its "backup
// phase" lines say where a backup's time went); without it the child
// logs nothing, as logging would cost the measured run.
const benchLogEnv = "BENCH_LOG"

func benchLogger() (*slog.Logger, func(), error) {
	path := os.Getenv(benchLogEnv)
	if path == "" {
		return slog.New(slog.DiscardHandler), func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})), func() { f.Close() }, nil
}

// measured is one child process's run.
type measured struct {
	wall      time.Duration
	user, sys time.Duration // CPU time of the process
	maxRSS    int64         // bytes
	out       string
}

// vmHWM reads a process's peak RSS in bytes (0 if it cannot).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kib)
			return kib << 10
		}
	}
	return 0
}

func runMeasured(b *testing.B, cmd *exec.Cmd) measured {
	b.Helper()
	var out strings.Builder
	if cmd.Stdout == nil {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	// Nothing dirty from an earlier run may be flushed on this one's time.
	syscall.Sync()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var hwm int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-tick.C:
			hwm = max(hwm, vmHWM(cmd.Process.Pid))
		}
	}
	m := measured{wall: time.Since(start), out: out.String(), maxRSS: hwm}
	if ps := cmd.ProcessState; ps != nil {
		m.user, m.sys = ps.UserTime(), ps.SystemTime()
	}
	if err != nil {
		b.Fatalf("%s: %v\n%s", cmd.Path, err, m.out)
	}
	return m
}

func (w *workload) engine(b *testing.B, dir string, full bool) (measured, Result) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+w.sim.Address(), "BENCH_UDID="+w.devs[0].UDID(), "BENCH_DIR="+dir)
	if full {
		cmd.Env = append(cmd.Env, "BENCH_FULL=1")
	}
	m := runMeasured(b, cmd)
	var res childResult
	if err := json.Unmarshal([]byte(m.out), &res); err != nil || res.Err != "" {
		b.Fatalf("engine: %v %s\n%s", err, res.Err, m.out)
	}
	m.maxRSS = max(m.maxRSS, res.VmHWM)
	return m, res.Result
}

func (w *workload) idevicebackup2(b *testing.B, dir string, full bool) measured {
	b.Helper()
	args := []string{"-u", w.devs[1].UDID(), "backup"}
	if full {
		args = append(args, "--full")
	}
	cmd := exec.Command(w.ib2, append(args, dir)...)
	cmd.Env = append(os.Environ(), "USBMUXD_SOCKET_ADDRESS="+w.sim.Address())
	m := runMeasured(b, cmd)
	if !strings.Contains(m.out, "Backup Successful.") {
		b.Fatalf("idevicebackup2:\n%s", m.out)
	}
	return m
}

type workload struct {
	sim  *sim.Sim
	devs []*sim.Device // [0] for backupd, [1] for idevicebackup2, [2] for the discard host
	ib2  string
}

func newWorkload(b *testing.B, spec sim.FileSpec) *workload {
	b.Helper()
	if os.Getenv(benchCompareEnv) != "1" {
		b.Skipf("set %s=1 (make bench-compare) to compare with idevicebackup2", benchCompareEnv)
	}
	ib2 := simtest.RequireTool(b, "idevicebackup2")
	if spec.Count >= manyFiles {
		// Registered first, so it runs last: after the temporary
		// directories of the many-file rounds are gone, the next
		// benchmark waits out the kernel's window for freed inodes (see
		// discardTrees), or its first rounds pay for this one's removal.
		b.Cleanup(func() { time.Sleep(recentlyDeleted) })
	}
	spec.Seed = 42
	s, devs := simtest.StartT(b, sim.DeviceConfig{Files: spec}, sim.DeviceConfig{Files: spec}, sim.DeviceConfig{Files: spec})
	return &workload{sim: s, devs: devs, ib2: ib2}
}

// benchCompare runs one round per b.N: a full backup by each tool, or,
// when incremental, a full backup by each, the same mutation on all
// devices, and the timed incremental backups. The tools take turns at
// going first.
func benchCompare(b *testing.B, spec sim.FileSpec, mutate float64) {
	w := newWorkload(b, spec)
	dh := newDaemonHost(b, spec)
	disc := w.discardRate(b)
	var eng, ib, dmn toolFigures
	var bytes, files int64
	rounds := 0
	for b.Loop() {
		rounds++
		ours, theirs := b.TempDir(), b.TempDir()
		var dd daemonDirs
		if dh != nil {
			dd = dh.dirs(b)
		}
		if mutate > 0 {
			w.engine(b, ours, true)
			w.idevicebackup2(b, theirs, true)
			n0, n1 := w.devs[0].Mutate(mutate), w.devs[1].Mutate(mutate)
			if dh != nil {
				dh.run(b, dd)
				if n := dh.dev.Mutate(mutate); n != n0 {
					b.Fatalf("mutations differ: %d and %d", n0, n)
				}
			}
			if n0 != n1 || n0 == 0 {
				b.Fatalf("mutations differ: %d and %d", n0, n1)
			}
		}
		var res Result
		tools := []func(){
			func() {
				var m measured
				m, res = w.engine(b, ours, mutate == 0)
				eng.add(m)
			},
			func() { ib.add(w.idevicebackup2(b, theirs, mutate == 0)) },
		}
		if dh != nil {
			tools = append(tools, func() { dmn.add(dh.run(b, dd)) })
		}
		for i := range tools {
			tools[(i+rounds)%len(tools)]()
		}
		sent0, sent1 := w.devs[0].BackupStats(), w.devs[1].BackupStats()
		if sent0.FilesSent != sent1.FilesSent || sent0.LastFull != sent1.LastFull {
			b.Fatalf("the tools got different backups: %+v and %+v", sent0, sent1)
		}
		if dh != nil {
			if s := dh.dev.BackupStats(); s.FilesSent != sent0.FilesSent || s.LastFull != sent0.LastFull {
				b.Fatalf("the daemon got a different backup: %+v and %+v", s, sent0)
			}
		}
		bytes, files = res.Bytes, res.Files
		discardTrees(spec, ours, theirs)
	}
	b.ReportMetric(float64(files), "files")
	b.ReportMetric(float64(bytes)/(1<<20), "MiB")
	eng.report(b, "backupd", bytes, files)
	ib.report(b, "idevicebackup2", bytes, files)
	dmn.report(b, "daemon", bytes, files)
	b.ReportMetric(ratio(&eng, &ib), "ratio")
	b.ReportMetric(ratio(&dmn, &ib), "daemon-ratio")
	b.ReportMetric(float64(bytes)/float64(1<<20)/median(eng.wall).Seconds(), "backupd-MiB/s")
	b.ReportMetric(disc, "sim-discard-MiB/s")
}

// recentlyDeleted is how long ext4 without a journal keeps a freed
// inode from reuse (the kernel's recently_deleted: 30 s), and a second.
const recentlyDeleted = 31 * time.Second

// manyFiles is the number of files past which a round's trees are kept
// to the end of the benchmark rather than removed after the round.
const manyFiles = 1000

// discardTrees removes a round's trees when they hold few files, to
// spare the disk. Trees of many files stay until the benchmark ends (its
// temporary directories' cleanup): on an ext4 without a journal, as this
// machine's, a new inode skips every inode freed in the last 30 seconds
// (the kernel's recently_deleted), so whichever tool went first after a
// removal of 20 000 files paid for it, up to a second of system time on
// W1, and the figures measured the order of the tools.
func discardTrees(spec sim.FileSpec, dirs ...string) {
	if spec.Count >= manyFiles {
		return
	}
	for _, d := range dirs {
		os.RemoveAll(d)
	}
}

// BenchmarkW1: 20 000 files of 1–64 KiB, full.
func BenchmarkW1(b *testing.B) {
	benchCompare(b, sim.FileSpec{Count: 20000, MinSize: 1 << 10, MaxSize: 64 << 10}, 0)
}

// BenchmarkW2: 8 files of 256 MiB, full.
func BenchmarkW2(b *testing.B) {
	benchCompare(b, sim.FileSpec{Count: 8, MinSize: 256 << 20, MaxSize: 256 << 20}, 0)
}

// BenchmarkW3: W1, then 1% of its files changed: the incremental backup.
func BenchmarkW3(b *testing.B) {
	benchCompare(b, sim.FileSpec{Count: 20000, MinSize: 1 << 10, MaxSize: 64 << 10}, 0.01)
}

// discardRate has the third device send a full backup to a host that
// keeps nothing, and returns the content rate in MiB/s.
func (w *workload) discardRate(b *testing.B) float64 {
	b.Helper()
	ctx := testCtx(b)
	addr, _ := usbmux.ParseAddr(w.sim.Address())
	mux := usbmux.NewClient(usbmux.Config{Addr: addr})
	var dev usbmux.Device
	list, err := mux.ListDevices(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range list {
		if d.UDID == w.devs[2].UDID() {
			dev = d
		}
	}
	conn, err := mux.ConnectService(ctx, dev, lockdown.ServiceMobileBackup2, true)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	s := newSession(conn, Options{}.withDefaults(), nil, "", nil)
	if err := s.handshake(); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	n, err := discardBackup(s.dl, dev.UDID)
	if err != nil {
		b.Fatal(err)
	}
	return float64(n) / float64(1<<20) / time.Since(start).Seconds()
}

// discardBackup asks for a full backup and answers every request with
// success, reading uploads into io.Discard. It keeps only each file's
// name and size, so that its listings agree with what the device sent
// (a device checks them at the end). It returns the content bytes.
func discardBackup(dl *devicelink.Conn, udid string) (int64, error) {
	sizes := map[string]int64{}
	if err := dl.SendProcessMessage(map[string]any{"MessageName": "Backup", "TargetIdentifier": udid, "Options": map[string]any{"ForceFullBackup": true}}); err != nil {
		return 0, err
	}
	var total int64
	for {
		name, msg, err := dl.ReadMessage()
		if err != nil {
			return total, err
		}
		switch name {
		case devicelink.MsgDownloadFiles:
			paths, _ := devicelink.Strings(msg[1])
			fw := dl.NewFileWriter(devicelink.Download, 0)
			errs := map[string]devicelink.FileError{}
			for _, p := range paths {
				fw.Begin("", p)
				fw.Fail("No such file or directory")
				errs[p] = devicelink.FileError{Code: devicelink.CodeNoEntry, Message: "No such file or directory"}
			}
			if err := fw.Finish(); err != nil {
				return total, err
			}
			err = dl.SendStatusResponse(devicelink.CodeMultiStatus, "Multi status", devicelink.MultiStatus(errs))
		case devicelink.MsgUploadFiles:
			fr := dl.NewFileReader(devicelink.Upload)
			for {
				var h devicelink.FileHeader
				if h, err = fr.Next(); err != nil {
					break
				}
				var n int64
				n, err = fr.WriteTo(io.Discard)
				total += n
				sizes[h.Path] += n
				if err != nil {
					break
				}
			}
			if !errors.Is(err, io.EOF) {
				return total, err
			}
			err = dl.SendStatusResponse(0, "", map[string]any{})
		case devicelink.MsgGetFreeDiskSpace:
			err = dl.SendStatusResponse(0, "", uint64(1<<40))
		case devicelink.MsgMoveItems, devicelink.MsgMoveFiles:
			moves, _ := devicelink.MovesArg(msg, 1)
			moves.Each(func(src, dst string) error {
				if n, ok := sizes[src]; ok {
					delete(sizes, src)
					sizes[dst] = n
				}
				return nil
			})
			err = dl.SendStatusResponse(0, "", map[string]any{})
		case devicelink.MsgContentsOfDir:
			dir, _ := devicelink.Arg[string](msg, 1)
			list := map[string]any{}
			for p, n := range sizes {
				if path.Dir(p) == dir {
					list[path.Base(p)] = map[string]any{"DLFileType": "DLFileTypeRegular", "DLFileSize": uint64(n)}
				}
			}
			err = dl.SendStatusResponse(0, "", list)
		case devicelink.MsgProcessMessage:
			d, _ := devicelink.ProcessMessageDict(msg)
			if c, _ := wire.Int(d["ErrorCode"]); c != 0 {
				return total, fmt.Errorf("device error %d", c)
			}
			dl.Disconnect("")
			return total, nil
		default:
			err = dl.SendStatusResponse(0, "", map[string]any{})
		}
		if err != nil {
			return total, err
		}
	}
}
