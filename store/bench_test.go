package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/backupd/backupd/cause"
)

// benchHistory writes a history of n runs spread over devices devices,
// one run every five minutes taking turns, the way a year of plug-ins and
// schedules piles up: mostly successes, then failures with various
// causes, skips and interruptions. It writes through the store's own
// transaction code, many runs per transaction and without fsync, which
// only the setup can afford.
func benchHistory(b *testing.B, path string, n, devices int) {
	b.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.db.NoSync = true
	causes := []cause.Code{cause.Disconnected, cause.PasscodeNotEntered, cause.DeviceLocked, cause.HostDiskFull, cause.Stalled}
	const batch = 10_000
	start := t0.Add(-time.Duration(n) * 5 * time.Minute)
	for done := 0; done < n; done += batch {
		err := s.update(func(tx *bolt.Tx) error {
			for i := done; i < min(done+batch, n); i++ {
				udid := fmt.Sprintf("%08X-%016X", i%devices, i%devices*7919)
				r := run(udid, start.Add(time.Duration(i)*5*time.Minute))
				r.Trigger = []Trigger{TriggerPlugIn, TriggerSchedule, TriggerManual}[i%3]
				// Outcomes go by the device's own count, so every device
				// has some of each.
				k := i / devices
				switch k % 10 {
				case 8:
					r.Outcome, r.Cause, r.End, r.Note = OutcomeSkipped, cause.BatteryLow, r.Start, "skipped: battery 9%"
					if err := s.create(tx, &r); err != nil {
						return err
					}
					continue
				}
				r.Outcome = OutcomeRunning
				if err := s.create(tx, &r); err != nil {
					return err
				}
				r.End = r.Start.Add(4 * time.Minute)
				switch k % 10 {
				case 7:
					r.Outcome, r.Cause = OutcomeFailed, causes[k/10%len(causes)]
				case 9:
					r.Outcome, r.Cause = OutcomeInterrupted, cause.Interrupted
				default:
					r.Outcome, r.Kind, r.Bytes, r.Files = OutcomeSuccess, KindIncremental, 3<<30, 41_000
					r.Verify, r.VersionPath = "ok", "/srv/backups/.backupd/versions/"+udid+"/"+r.Start.Format(time.RFC3339)
				}
				if _, err := s.finish(tx, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := s.db.Sync(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkHistory100k: the queries status and history make, on a history
// of 100,000 runs over ten devices. LatestPerDevice must stay well under
// 100 ms whatever the history's length: it reads one run per device.
func BenchmarkHistory100k(b *testing.B) {
	const n, devices = 100_000, 10
	path := filepath.Join(b.TempDir(), "history.db")
	setup := time.Now()
	benchHistory(b, path, n, devices)
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	hw, _ := highWater(b, path)
	b.Logf("setup: %d runs in %v; file %.1f MiB, pages %.1f MiB", n, time.Since(setup).Round(time.Millisecond),
		float64(info.Size())/(1<<20), float64(hw)/(1<<20))
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() }) // on a failure; closing twice is harmless
	devs, err := s.Devices()
	if err != nil || len(devs) != devices {
		b.Fatalf("%d devices, %v", len(devs), err)
	}
	udid := devs[3].UDID

	// msPerOp reports the time per operation in milliseconds, the unit of
	// the 100 ms target.
	msPerOp := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/op")
	}
	b.Run("LatestPerDevice", func(b *testing.B) {
		for b.Loop() {
			runs, err := s.LatestPerDevice()
			if err != nil || len(runs) != devices {
				b.Fatalf("%d runs, %v", len(runs), err)
			}
		}
		msPerOp(b)
	})
	b.Run("HistoryFirstPage", func(b *testing.B) {
		for b.Loop() {
			page, err := s.History(udid, HistoryQuery{})
			if err != nil || len(page.Runs) != DefaultHistoryLimit {
				b.Fatalf("%d runs, %v", len(page.Runs), err)
			}
		}
		msPerOp(b)
		b.ReportMetric(DefaultHistoryLimit, "runs/page")
	})
	b.Run("HistoryFirstPageFailedOnly", func(b *testing.B) {
		for b.Loop() {
			page, err := s.History(udid, HistoryQuery{Outcomes: []Outcome{OutcomeFailed}})
			if err != nil || len(page.Runs) != DefaultHistoryLimit {
				b.Fatalf("%d runs, %v", len(page.Runs), err)
			}
		}
		msPerOp(b)
	})
	b.Run("HistoryFirstPageAllDevices", func(b *testing.B) {
		for b.Loop() {
			page, err := s.History("", HistoryQuery{})
			if err != nil || len(page.Runs) != DefaultHistoryLimit {
				b.Fatalf("%d runs, %v", len(page.Runs), err)
			}
		}
		msPerOp(b)
	})
	b.Run("FailuresByCauseLast30Days", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.FailuresByCause(t0.Add(-30 * 24 * time.Hour)); err != nil {
				b.Fatal(err)
			}
		}
		msPerOp(b)
	})
	b.Run("BeginAndFinishRun", func(b *testing.B) {
		// Two transactions, each with its fsync: what one backup costs.
		start := t0.Add(time.Hour)
		for b.Loop() {
			start = start.Add(time.Minute)
			r, err := s.BeginRun(run(udid, start))
			if err != nil {
				b.Fatal(err)
			}
			r.Outcome, r.End = OutcomeSuccess, start.Add(time.Second)
			if _, err := s.FinishRun(r); err != nil {
				b.Fatal(err)
			}
		}
		msPerOp(b)
	})
	b.Run("Check", func(b *testing.B) {
		for b.Loop() {
			if err := s.Check(); err != nil {
				b.Fatal(err)
			}
		}
		msPerOp(b)
	})
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("CLIOpenReadOnlyAndLatest", func(b *testing.B) {
		// What `backupd status` costs without a daemon: open, read, close.
		for b.Loop() {
			ro, err := Open(path, Options{ReadOnly: true})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ro.LatestPerDevice(); err != nil {
				b.Fatal(err)
			}
			ro.Close()
		}
		msPerOp(b)
	})
}
