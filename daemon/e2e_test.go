package daemon

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// These tests run the daemon against the simulated iPhone, as the issue's
// acceptance list has it.

// TestPlugIn: plugging in a trusted device makes exactly one successful
// run; plugging it in again inside min_interval makes none.
func TestPlugIn(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 50}})
	dev := devs[0]
	cfg := testConfig(t, s)
	r := start(t, cfg, Options{})

	runs := waitRuns(t, r.c, dev.UDID(), 1, 30*time.Second)
	if len(runs) != 1 || runs[0].Outcome != api.OutcomeSuccess || runs[0].Trigger != api.TriggerPlugIn {
		t.Fatalf("runs after the plug-in: %+v", runs)
	}
	if runs[0].Kind != "full" || runs[0].Files == 0 || runs[0].VersionPath == "" || runs[0].Cause != cause.None {
		t.Errorf("run record: %+v", runs[0])
	}
	if got := dev.BackupStats().Backups; got != 1 {
		t.Errorf("the device made %d backups, want 1", got)
	}
	d := waitState(t, r.c, dev.UDID(), 5*time.Second, api.StateSucceeded)
	if d.Name == "" || d.LastSuccess.IsZero() || d.NextAttempt.IsZero() {
		t.Errorf("device after the backup: %+v", d)
	}
	var walked []api.State
	for _, tr := range d.Transitions {
		walked = append(walked, tr.State)
	}
	if want := []api.State{api.StateChecking, api.StateQueued, api.StateBackingUp, api.StateSucceeded}; !slices.Equal(walked, want) {
		t.Errorf("transitions %v, want %v", walked, want)
	}

	dev.Unplug()
	waitState(t, r.c, dev.UDID(), 5*time.Second, api.StateAbsent)
	dev.Plug()
	d = waitState(t, r.c, dev.UDID(), 10*time.Second, api.StateUpToDate)
	if d.Cause != cause.Recent || !strings.Contains(d.Note, "skipped: recent") {
		t.Errorf("device after the second plug-in: %+v", d)
	}
	if runs := runsOf(t, r.c, dev.UDID()); len(runs) != 1 {
		t.Errorf("the second plug-in recorded runs: %+v", runs)
	}
	if got := dev.BackupStats().Backups; got != 1 {
		t.Errorf("the device made %d backups, want 1", got)
	}
}

// TestUntrusted: a phone that was never paired shows the Trust prompt and
// is recorded skipped with trust_pending, once however often it is looked
// at; when someone taps Trust, it is backed up.
func TestUntrusted(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Pairing: sim.Unpaired, Files: sim.FileSpec{Count: 20}})
	dev := devs[0]
	r := start(t, testConfig(t, s), Options{})

	runs := waitRuns(t, r.c, dev.UDID(), 1, 10*time.Second)
	if runs[0].Outcome != api.OutcomeSkipped || runs[0].Cause != cause.TrustPending || runs[0].Fix == "" {
		t.Fatalf("run: %+v", runs[0])
	}
	d := waitState(t, r.c, dev.UDID(), 5*time.Second, api.StateWaiting)
	if d.Cause != cause.TrustPending || d.NextAttempt.IsZero() {
		t.Errorf("device: %+v", d)
	}
	// Several rechecks (every 100 ms) and still one record.
	time.Sleep(400 * time.Millisecond)
	if runs := runsOf(t, r.c, dev.UDID()); len(runs) != 1 {
		t.Fatalf("rechecks recorded more runs: %+v", runs)
	}
	dev.TapTrust()
	runs = waitRuns(t, r.c, dev.UDID(), 2, 30*time.Second)
	if runs[0].Outcome != api.OutcomeSuccess {
		t.Fatalf("after Trust: %+v", runs[0])
	}
}

// TestSkips: a low battery, a full disk and a denied device each end in
// their cause, and no backup.
func TestSkips(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		dev   sim.DeviceConfig
		edit  func(*Config, *Options)
		want  cause.Code
		state api.State
	}{
		{"battery low", sim.DeviceConfig{BatteryLevel: 8}, nil, cause.BatteryLow, api.StateSkipped},
		{"host disk full", sim.DeviceConfig{DiskUsed: 40 << 30}, func(c *Config, o *Options) {
			o.FreeSpace = func(string) (uint64, error) { return 2 << 30, nil }
		}, cause.HostDiskFull, api.StateSkipped},
		{"quiet hours", sim.DeviceConfig{}, func(c *Config, o *Options) {
			now := time.Now()
			c.Policy.QuietHours = QuietHours{Start: now.Add(-time.Hour).Format("15:04"), End: now.Add(time.Hour).Format("15:04")}
		}, cause.QuietHours, api.StateSkipped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, devs := simtest.StartT(t, tt.dev)
			dev := devs[0]
			cfg := testConfig(t, s)
			var opts Options
			if tt.edit != nil {
				tt.edit(&cfg, &opts)
			}
			r := start(t, cfg, opts)
			runs := waitRuns(t, r.c, dev.UDID(), 1, 10*time.Second)
			if len(runs) != 1 || runs[0].Outcome != api.OutcomeSkipped || runs[0].Cause != tt.want || runs[0].Note == "" {
				t.Fatalf("runs: %+v", runs)
			}
			d := waitState(t, r.c, dev.UDID(), 5*time.Second, tt.state)
			if d.Cause != tt.want || d.Summary == "" || d.Fix == "" {
				t.Errorf("device: %+v", d)
			}
			if dev.BackupStats().Backups != 0 {
				t.Error("the device was backed up")
			}
		})
	}

	t.Run("deny list", func(t *testing.T) {
		t.Parallel()
		s, devs := simtest.StartT(t, sim.DeviceConfig{})
		dev := devs[0]
		cfg := testConfig(t, s)
		cfg.Policy.Deny = []string{dev.UDID()}
		r := start(t, cfg, Options{})
		d := waitState(t, r.c, dev.UDID(), 5*time.Second, api.StateIgnored)
		if !strings.Contains(d.Note, "deny") {
			t.Errorf("device: %+v", d)
		}
		_, err := r.c.BackupNow(ctxT(t), dev.UDID(), api.BackupRequest{})
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Code != api.ErrRefused || ce.Status != 403 {
			t.Errorf("backup now of a denied device: %v", err)
		}
		if runs := runsOf(t, r.c, dev.UDID()); len(runs) != 0 {
			t.Errorf("a denied device has runs: %+v", runs)
		}
		if dev.Sessions() != 0 {
			t.Error("a denied device was talked to")
		}
	})
}

// TestUnplugMidBackup: pulling the cable mid-backup records disconnected
// and leaves the previous backup as it was, with no staging behind.
func TestUnplugMidBackup(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 100, MaxSize: 128 << 10}})
	dev := devs[0]
	cfg := testConfig(t, s)
	r := start(t, cfg, Options{})
	waitRuns(t, r.c, dev.UDID(), 1, 30*time.Second)
	waitState(t, r.c, dev.UDID(), 5*time.Second, api.StateSucceeded)
	before := latestHash(t, cfg, dev.UDID())

	dev.SetFaults(sim.Faults{UnplugAfterBytes: 200 << 10})
	if _, err := r.c.BackupNow(ctxT(t), dev.UDID(), api.BackupRequest{Full: true}); err != nil {
		t.Fatal(err)
	}
	runs := waitRuns(t, r.c, dev.UDID(), 2, 30*time.Second)
	got := runs[0]
	if got.Outcome != api.OutcomeFailed || got.Cause != cause.Disconnected || got.Trigger != api.TriggerManual {
		t.Fatalf("run: %+v", got)
	}
	waitState(t, r.c, dev.UDID(), 5*time.Second, api.StateAbsent)
	if h := latestHash(t, cfg, dev.UDID()); h != before {
		t.Error("the previous backup changed")
	}
	waitFor(t, 5*time.Second, "staging to go", func() bool { return len(stagingLeft(t, cfg)) == 0 })

	// Plugged in again inside min_interval: nothing to do.
	dev.SetFaults(sim.Faults{})
	dev.Plug()
	waitState(t, r.c, dev.UDID(), 10*time.Second, api.StateUpToDate)
}

// TestMaxConcurrent: three devices at once with max_concurrent 2 never
// have more than two backups running, and all three succeed.
func TestMaxConcurrent(t *testing.T) {
	t.Parallel()
	files := sim.FileSpec{Count: 60, MaxSize: 64 << 10}
	// A slow link keeps each backup running long enough to overlap.
	slow := sim.Faults{SlowLinkBytesPerSec: 4 << 20}
	s, devs := simtest.StartT(t,
		sim.DeviceConfig{Files: files, Faults: slow},
		sim.DeviceConfig{Files: files, Faults: slow},
		sim.DeviceConfig{Files: files, Faults: slow})
	cfg := testConfig(t, s)
	cfg.Policy.MaxConcurrent = 2
	counter := &countingBackuper{next: engineFor(t, s, cfg)}
	r := start(t, cfg, Options{Backuper: counter})

	events, err := r.c.Events(ctxT(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	for _, d := range devs {
		runs := waitRuns(t, r.c, d.UDID(), 1, 60*time.Second)
		if runs[0].Outcome != api.OutcomeSuccess {
			t.Errorf("%s: %+v", d.UDID(), runs[0])
		}
	}
	peak, started := counter.stats()
	if peak > 2 || started != 3 {
		t.Errorf("peak %d backups at once, %d started; want at most 2 and 3", peak, started)
	}
	if peak < 2 {
		t.Logf("the backups never overlapped (peak %d)", peak)
	}
	var h api.Health
	waitFor(t, 5*time.Second, "no backups running", func() bool {
		h, err = r.c.Health(ctxT(t))
		return err == nil && h.BackupsRunning == 0
	})
	if h.MaxConcurrent != 2 || h.Connected != 3 {
		t.Errorf("health %+v", h)
	}

	// The stream saw the same: never more than two devices backing up.
	states := map[string]api.State{}
	for {
		ev, err := nextEvent(events, time.Second)
		if err != nil {
			break
		}
		if ev.Type != api.EventState {
			continue
		}
		states[ev.UDID] = ev.State
		n := 0
		for _, st := range states {
			if st == api.StateBackingUp {
				n++
			}
		}
		if n > 2 {
			t.Fatalf("the event stream shows %d devices backing up at once: %v", n, states)
		}
	}
}

// nextEvent reads the next event, giving up after d.
func nextEvent(s *client.EventStream, d time.Duration) (api.Event, error) {
	type res struct {
		ev  api.Event
		err error
	}
	ch := make(chan res, 1)
	go func() {
		ev, err := s.Next()
		ch <- res{ev, err}
	}()
	select {
	case r := <-ch:
		return r.ev, r.err
	case <-time.After(d):
		s.Close()
		return api.Event{}, errors.New("no event in time")
	}
}

// TestRetryAfterTransientFailure: a transient failure (another tool holds
// the sync lock) is retried with backoff while the phone stays connected.
func TestRetryAfterTransientFailure(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20}, Faults: sim.Faults{LockNeverGranted: true}})
	dev := devs[0]
	cfg := testConfig(t, s)
	cfg.Policy.RetryLimit = 3
	cfg.Policy.RetryInitial = Duration(time.Second)
	cfg.Policy.RetryMax = Duration(2 * time.Second)
	r := start(t, cfg, Options{})
	runs := waitRuns(t, r.c, dev.UDID(), 1, 10*time.Second)
	if runs[0].Outcome != api.OutcomeFailed || runs[0].Cause != cause.DeviceBusy {
		t.Fatalf("first run: %+v", runs[0])
	}
	// The actor adds the retry to the failed state once the attempt has
	// ended.
	waitFor(t, 5*time.Second, "the retry to be scheduled", func() bool {
		d, err := r.c.Device(ctxT(t), dev.UDID())
		return err == nil && d.State == api.StateFailed && !d.NextAttempt.IsZero() && strings.Contains(d.Note, "retry 1 of 3")
	})
	dev.SetFaults(sim.Faults{})
	runs = waitRuns(t, r.c, dev.UDID(), 2, 20*time.Second)
	if runs[0].Outcome != api.OutcomeSuccess || runs[0].Trigger != api.TriggerPlugIn {
		t.Fatalf("retry: %+v", runs[0])
	}
}

// TestWiFi: a phone usbmuxd reaches over the network is left alone unless
// Wi-Fi backups are on.
func TestWiFi(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		t.Run(map[bool]string{false: "off", true: "on"}[on], func(t *testing.T) {
			t.Parallel()
			s, devs := simtest.StartT(t, sim.DeviceConfig{ConnType: sim.Network, Files: sim.FileSpec{Count: 20}})
			dev := devs[0]
			cfg := testConfig(t, s)
			cfg.Policy.WiFi = on
			r := start(t, cfg, Options{})
			if !on {
				d := waitState(t, r.c, dev.UDID(), 5*time.Second, api.StateIgnored)
				if !strings.Contains(d.Note, "Wi-Fi") || d.Link != "Network" {
					t.Errorf("device: %+v", d)
				}
				if dev.Sessions() != 0 {
					t.Error("a Wi-Fi device was talked to with Wi-Fi off")
				}
				return
			}
			runs := waitRuns(t, r.c, dev.UDID(), 1, 20*time.Second)
			if runs[0].Outcome != api.OutcomeSuccess || runs[0].Link != "Network" {
				t.Fatalf("run: %+v", runs[0])
			}
		})
	}
}

// TestBackupDirAppears: a backup_dir that is not there at start (a disk
// not mounted yet) does not stop the daemon: devices are skipped as
// host_not_writable until it appears, then backed up.
func TestBackupDirAppears(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20}})
	dev := devs[0]
	cfg := testConfig(t, s)
	if err := os.Remove(cfg.BackupDir); err != nil {
		t.Fatal(err)
	}
	cfg.Policy.ConditionRecheck = Duration(200 * time.Millisecond)
	r := start(t, cfg, Options{})
	runs := waitRuns(t, r.c, dev.UDID(), 1, 10*time.Second)
	if runs[0].Outcome != api.OutcomeSkipped || runs[0].Cause != cause.HostNotWritable || !strings.Contains(runs[0].Note, "mounted") {
		t.Fatalf("run: %+v", runs[0])
	}
	if err := os.Mkdir(cfg.BackupDir, 0o755); err != nil {
		t.Fatal(err)
	}
	runs = waitRuns(t, r.c, dev.UDID(), 2, 20*time.Second)
	if runs[0].Outcome != api.OutcomeSuccess {
		t.Fatalf("once the directory is there: %+v", runs[0])
	}
}
