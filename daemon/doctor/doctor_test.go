package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/proto/afc"
	"github.com/backupd/backupd/usbmux"
)

const udid = "00008030-001A2B3C4D5E802E"

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// fakeMux answers as usbmuxd and a phone would; its fields say how.
type fakeMux struct {
	listErr  error
	devices  []usbmux.Device
	recErr   error
	trust    usbmux.Trust
	trustErr error
	facts    usbmux.Facts
	factsErr error
	calls    []string
}

func (m *fakeMux) Addr() usbmux.Addr { return usbmux.Addr{Network: "unix", Address: "/fake/usbmuxd"} }

func (m *fakeMux) ListDevices(context.Context) ([]usbmux.Device, error) {
	m.calls = append(m.calls, "ListDevices")
	return m.devices, m.listErr
}

func (m *fakeMux) ReadPairRecord(_ context.Context, u string) (*usbmux.PairRecord, error) {
	m.calls = append(m.calls, "ReadPairRecord "+u)
	if m.recErr != nil {
		return nil, m.recErr
	}
	return &usbmux.PairRecord{}, nil
}

func (m *fakeMux) CheckTrust(_ context.Context, dev usbmux.Device, opts usbmux.TrustOptions) (usbmux.Trust, error) {
	m.calls = append(m.calls, "CheckTrust "+dev.UDID)
	if opts.StartPairing {
		// doctor must never raise the Trust prompt on a phone.
		return "", errors.New("doctor asked to pair")
	}
	return m.trust, m.trustErr
}

func (m *fakeMux) Facts(_ context.Context, dev usbmux.Device) (usbmux.Facts, error) {
	m.calls = append(m.calls, "Facts "+dev.UDID)
	return m.facts, m.factsErr
}

// world is a healthy setup: one trusted iPhone over USB 2, backed up an
// hour ago by a running daemon, 100 GiB free.
type world struct {
	mux       *fakeMux
	known     Known
	knownErr  error
	lockErr   error
	lockCalls int
	free      uint64
	freeErr   error
	links     bool
	linksErr  error
	latest    bool
	cfg       Config
	sysfs     string
}

func healthy(t *testing.T) *world {
	last := now.Add(-time.Hour)
	return &world{
		mux: &fakeMux{
			devices: []usbmux.Device{{UDID: udid, DeviceID: 7, ConnType: usbmux.ConnUSB, Speed: usbmux.SpeedUSB2}},
			trust:   usbmux.Trusted,
			facts:   usbmux.Facts{UDID: udid, Name: "Anna's iPhone", ProductType: "iPhone14,5", BatteryLevel: 80, DiskUsed: 20 << 30},
		},
		known: Known{DaemonRunning: true, Health: &api.Health{PID: 42, Usbmuxd: api.Usbmuxd{Connected: true}}, Devices: []api.Device{{
			UDID: udid, Name: "Anna's iPhone", ProductType: "iPhone14,5", Connected: true, State: api.StateUpToDate,
			FirstSeen: now.Add(-30 * 24 * time.Hour), LastSuccess: last,
			LastAttempt: &api.Run{Outcome: api.OutcomeSuccess, Start: last.Add(-time.Minute), End: last, Kind: "incremental", Bytes: 1 << 20},
		}}},
		free:   100 << 30,
		links:  true,
		latest: true,
		cfg: Config{
			BackupDir: t.TempDir(), FreeSpaceMargin: 1 << 30, MinBattery: 20,
			OverdueAfter: 7 * 24 * time.Hour, Clone: "auto",
		},
	}
}

func (w *world) deps() Deps {
	return Deps{
		Mux:   w.mux,
		Known: func(context.Context) (Known, error) { return w.known, w.knownErr },
		SyncLock: func(context.Context, usbmux.Device, time.Duration) error {
			w.lockCalls++
			return w.lockErr
		},
		FreeSpace:  func(string) (uint64, error) { return w.free, w.freeErr },
		HardLinks:  func(string) (bool, error) { return w.links, w.linksErr },
		HasLatest:  func(string) bool { return w.latest },
		USBDevices: w.sysfs,
		Now:        func() time.Time { return now },
	}
}

func (w *world) run(t *testing.T) Report {
	t.Helper()
	rep, err := Run(context.Background(), w.cfg, w.deps())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// find returns the check id of the device (or of the computer when
// device is empty).
func find(t *testing.T, rep Report, device, id string) Check {
	t.Helper()
	cs := rep.Checks
	if device != "" {
		cs = nil
		for _, d := range rep.Devices {
			if d.UDID == device {
				cs = d.Checks
			}
		}
	}
	for _, c := range cs {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no check %q for %q in %+v", id, device, rep)
	return Check{}
}

func TestHealthyPassesEveryCheck(t *testing.T) {
	w := healthy(t)
	rep := w.run(t)
	if !rep.OK || len(rep.Failures()) != 0 {
		t.Fatalf("a healthy setup failed %v", rep.Failures())
	}
	for _, c := range rep.Checks {
		if c.Status != OK {
			t.Errorf("computer check %s: %s %q", c.ID, c.Status, c.Found)
		}
	}
	if len(rep.Devices) != 1 {
		t.Fatalf("devices: %+v", rep.Devices)
	}
	d := rep.Devices[0]
	var ids []string
	for _, c := range d.Checks {
		ids = append(ids, c.ID)
		if c.Status != OK {
			t.Errorf("device check %s: %s %q", c.ID, c.Status, c.Found)
		}
		if c.Title == "" || c.Found == "" {
			t.Errorf("check %s has no title or nothing found: %+v", c.ID, c)
		}
	}
	want := []string{IDLink, IDFlaps, IDPairRecord, IDLockdown, IDBattery, IDEncryption, IDFreeSpace, IDSyncLock, IDLastRun, IDOverdue}
	if !slices.Equal(ids, want) {
		t.Errorf("device checks %v, want %v", ids, want)
	}
	if d.Name != "Anna's iPhone" || d.ProductType != "iPhone14,5" || !d.Connected {
		t.Errorf("device report %+v", d)
	}
	if w.lockCalls != 1 {
		t.Errorf("sync lock probed %d times, want 1", w.lockCalls)
	}
}

// TestOneProblemFailsOneCheck breaks one thing at a time and wants
// exactly the right check to fail, with its cause and cause's own fix.
func TestOneProblemFailsOneCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		breakI func(w *world)
		failed []string // "id" for the computer, "udid/id" for the phone
		cause  cause.Code
	}{
		{"usbmuxd down", func(w *world) {
			w.mux.listErr = cause.New(cause.UsbmuxdUnavailable, errors.New("dial unix /fake/usbmuxd: connection refused"))
		}, []string{IDUsbmuxd}, cause.UsbmuxdUnavailable},
		{"never paired", func(w *world) { w.mux.recErr = fmt.Errorf("read pair record: %w", usbmux.ErrNoPairRecord) },
			[]string{udid + "/" + IDPairRecord}, cause.NotPaired},
		{"damaged pair record", func(w *world) { w.mux.recErr = cause.Errorf(cause.PairingInvalid, "pair record: no HostID") },
			[]string{udid + "/" + IDPairRecord}, cause.PairingInvalid},
		{"locked", func(w *world) { w.mux.trust = usbmux.DeviceLocked }, []string{udid + "/" + IDLockdown}, cause.DeviceLocked},
		{"trust pending", func(w *world) { w.mux.trust = usbmux.TrustPending }, []string{udid + "/" + IDLockdown}, cause.TrustPending},
		{"trust denied", func(w *world) { w.mux.trust = usbmux.TrustDenied }, []string{udid + "/" + IDLockdown}, cause.TrustDenied},
		{"forgotten", func(w *world) { w.mux.trust = usbmux.PairingInvalid }, []string{udid + "/" + IDLockdown}, cause.PairingInvalid},
		{"gone during the trust check", func(w *world) {
			w.mux.trustErr = cause.Errorf(cause.Disconnected, "usbmuxd Connect: result 2")
		}, []string{udid + "/" + IDLockdown}, cause.Disconnected},
		{"battery low", func(w *world) { w.mux.facts.BatteryLevel = 10 }, []string{udid + "/" + IDBattery}, cause.BatteryLow},
		{"full disk", func(w *world) { w.free = 512 << 20 }, []string{udid + "/" + IDFreeSpace}, cause.HostDiskFull},
		{"first backup does not fit", func(w *world) { w.latest, w.free = false, 10<<30 }, []string{udid + "/" + IDFreeSpace}, cause.HostDiskFull},
		{"sync lock held", func(w *world) {
			w.lockErr = fmt.Errorf("sync lock still held by another client: %w: %w", context.DeadlineExceeded, afc.ErrWouldBlock)
		}, []string{udid + "/" + IDSyncLock}, cause.DeviceBusy},
		{"backup folder missing", func(w *world) { w.cfg.BackupDir = filepath.Join(w.cfg.BackupDir, "unmounted") },
			[]string{IDBackupDir}, cause.HostNotWritable},
		{"last backup failed", func(w *world) {
			w.known.Devices[0].LastAttempt = &api.Run{Outcome: api.OutcomeFailed, Cause: cause.PasscodeNotEntered, Start: now.Add(-time.Hour)}
		}, []string{udid + "/" + IDLastRun}, cause.PasscodeNotEntered},
		{"overdue", func(w *world) { w.known.Devices[0].LastSuccess = now.Add(-8 * 24 * time.Hour) }, []string{udid + "/" + IDOverdue}, cause.None},
		{"cable flapping now", func(w *world) {
			w.known.Devices[0].RecentFlaps, w.known.Devices[0].Cause = 4, cause.CableUnstable
		}, []string{udid + "/" + IDFlaps}, cause.CableUnstable},
		{"no phone", func(w *world) { w.mux.devices = nil }, []string{IDDevices}, cause.None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := healthy(t)
			tc.breakI(w)
			rep := w.run(t)
			if got := rep.Failures(); !slices.Equal(got, tc.failed) {
				t.Fatalf("failed checks %v, want %v\n%s", got, tc.failed, text(t, rep))
			}
			if rep.OK {
				t.Error("report OK with a failed check")
			}
			dev, id, ok := strings.Cut(tc.failed[0], "/")
			if !ok {
				dev, id = "", dev
			}
			c := find(t, rep, dev, id)
			if c.Cause != tc.cause {
				t.Errorf("cause %q, want %q", c.Cause, tc.cause)
			}
			if c.Fix == "" {
				t.Error("a failed check without a fix")
			}
			if tc.cause != cause.None && c.Fix != cause.Lookup(tc.cause).Fix {
				t.Errorf("fix %q is not cause's own %q", c.Fix, cause.Lookup(tc.cause).Fix)
			}
		})
	}
}

func TestSkippedChecksSayWhy(t *testing.T) {
	t.Run("usbmuxd down: no device is checked", func(t *testing.T) {
		w := healthy(t)
		w.mux.listErr = cause.New(cause.UsbmuxdUnavailable, errors.New("refused"))
		rep := w.run(t)
		if c := find(t, rep, "", IDDevices); c.Status != Skipped || !strings.Contains(c.Found, "usbmuxd") {
			t.Errorf("devices: %+v", c)
		}
		if len(rep.Devices) != 0 {
			t.Errorf("devices checked without usbmuxd: %+v", rep.Devices)
		}
		if slices.ContainsFunc(w.mux.calls, func(s string) bool { return s != "ListDevices" }) {
			t.Errorf("calls after usbmuxd failed: %v", w.mux.calls)
		}
	})
	t.Run("no pair record: nothing that needs trust runs", func(t *testing.T) {
		w := healthy(t)
		w.mux.recErr = usbmux.ErrNoPairRecord
		rep := w.run(t)
		for _, id := range []string{IDLockdown, IDBattery, IDEncryption, IDSyncLock} {
			if c := find(t, rep, udid, id); c.Status != Skipped || c.Found == "" {
				t.Errorf("%s: %+v, want skipped with a reason", id, c)
			}
		}
		if w.lockCalls != 0 || slices.ContainsFunc(w.mux.calls, func(s string) bool { return strings.HasPrefix(s, "CheckTrust") || strings.HasPrefix(s, "Facts") }) {
			t.Errorf("trust-dependent calls made without a pair record: %v, %d sync lock probes", w.mux.calls, w.lockCalls)
		}
	})
	t.Run("backup folder missing: hard links and free space skipped", func(t *testing.T) {
		w := healthy(t)
		w.cfg.BackupDir = filepath.Join(w.cfg.BackupDir, "gone")
		rep := w.run(t)
		if c := find(t, rep, "", IDHardLinks); c.Status != Skipped {
			t.Errorf("hard links: %+v", c)
		}
		if c := find(t, rep, udid, IDFreeSpace); c.Status != Skipped {
			t.Errorf("free space: %+v", c)
		}
	})
	t.Run("the daemon is backing the phone up: the lock is not tried", func(t *testing.T) {
		w := healthy(t)
		w.known.Devices[0].State = api.StateBackingUp
		rep := w.run(t)
		if c := find(t, rep, udid, IDSyncLock); c.Status != Skipped || !strings.Contains(c.Found, "backupd is backing it up now") {
			t.Errorf("sync lock: %+v", c)
		}
		if w.lockCalls != 0 {
			t.Error("doctor tried the sync lock while backupd holds it")
		}
	})
	t.Run("no daemon: flaps unknown, the history still read", func(t *testing.T) {
		w := healthy(t)
		w.known.DaemonRunning, w.known.Health = false, nil
		rep := w.run(t)
		if !rep.OK || rep.DaemonRunning {
			t.Fatalf("without a daemon: ok=%v failures %v", rep.OK, rep.Failures())
		}
		if c := find(t, rep, "", IDDaemon); c.Status != Warning || c.Fix == "" {
			t.Errorf("daemon: %+v", c)
		}
		if c := find(t, rep, udid, IDFlaps); c.Status != Skipped || !strings.Contains(c.Found, "unknown") {
			t.Errorf("flaps: %+v", c)
		}
		if c := find(t, rep, udid, IDLastRun); c.Status != OK {
			t.Errorf("last run from the history: %+v", c)
		}
	})
}

func TestWarningsDoNotFail(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(w *world)
		dev   string
		id    string
		cause cause.Code
		found string
	}{
		{"USB 2 on a USB 3 model", func(w *world) { w.mux.facts.ProductType = "iPhone16,1" }, udid, IDLink, cause.SlowLink, "USB 2 (480 Mb/s), although this model (iPhone16,1) can do USB 3"},
		{"Wi-Fi with wifi off", func(w *world) { w.mux.devices[0].ConnType, w.mux.devices[0].Speed = usbmux.ConnNetwork, 0 }, udid, IDLink, cause.None, "policy.wifi is off"},
		{"a few drops", func(w *world) { w.known.Devices[0].RecentFlaps = 2 }, udid, IDFlaps, cause.CableUnstable, "2 in the last hour"},
		{"a full backup would not fit", func(w *world) { w.free = 15 << 30 }, udid, IDFreeSpace, cause.HostDiskFull, "a full backup would need about 21.0 GiB"},
		{"no hard links", func(w *world) { w.links = false }, "", IDHardLinks, cause.None, "not supported"},
		{"never backed up, new phone", func(w *world) {
			d := &w.known.Devices[0]
			d.LastSuccess, d.LastAttempt, d.FirstSeen = time.Time{}, nil, now.Add(-time.Hour)
		}, udid, IDOverdue, cause.None, "never backed up yet"},
		{"last attempt skipped", func(w *world) {
			w.known.Devices[0].LastAttempt = &api.Run{Outcome: api.OutcomeSkipped, Cause: cause.QuietHours, Start: now.Add(-time.Hour)}
		}, udid, IDLastRun, cause.QuietHours, "skipped"},
		{"no daemon", func(w *world) { w.known.DaemonRunning = false }, "", IDDaemon, cause.None, "not running"},
		{"the daemon cannot reach usbmuxd", func(w *world) {
			w.known.Health.Usbmuxd = api.Usbmuxd{Address: "UNIX:/old/usbmuxd", Error: "connection refused"}
		}, "", IDDaemon, cause.UsbmuxdUnavailable, "cannot reach usbmuxd at UNIX:/old/usbmuxd"},
		{"the history cannot be read", func(w *world) { w.known, w.knownErr = Known{}, errors.New("history.db: in use") }, "", IDDaemon, cause.None, "history.db: in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := healthy(t)
			tc.setup(w)
			rep := w.run(t)
			if !rep.OK {
				t.Fatalf("a warning failed the report: %v", rep.Failures())
			}
			c := find(t, rep, tc.dev, tc.id)
			if c.Status != Warning || c.Cause != tc.cause || !strings.Contains(c.Found, tc.found) {
				t.Errorf("%s: %+v; want a warning with cause %q containing %q", tc.id, c, tc.cause, tc.found)
			}
		})
	}
}

func TestBatteryAndEncryption(t *testing.T) {
	for _, tc := range []struct {
		name       string
		level      int
		charging   bool
		minBattery int
		want       Status
	}{
		{"above the minimum", 50, false, 20, OK},
		{"below, not charging", 10, false, 20, Failed},
		{"below, charging", 10, true, 20, OK},
		{"check off", 1, false, 0, OK},
		{"the phone does not say", -1, false, 20, Skipped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := healthy(t)
			w.mux.facts.BatteryLevel, w.mux.facts.Charging, w.cfg.MinBattery = tc.level, tc.charging, tc.minBattery
			if c := find(t, w.run(t), udid, IDBattery); c.Status != tc.want {
				t.Errorf("battery %+v, want %s", c, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		encrypts, required bool
		want               Status
		cause              cause.Code
	}{
		{false, false, OK, ""},
		{true, false, OK, ""},
		{true, true, OK, ""},
		{false, true, Failed, cause.NotEncrypted},
	} {
		w := healthy(t)
		w.mux.facts.WillEncrypt, w.cfg.RequireEncryption = tc.encrypts, tc.required
		c := find(t, w.run(t), udid, IDEncryption)
		if c.Status != tc.want || c.Cause != tc.cause || strings.Contains(c.Found, "not encrypted") == tc.encrypts {
			t.Errorf("WillEncrypt %v, required %v: %+v", tc.encrypts, tc.required, c)
		}
		if tc.want == Failed && c.Fix != cause.Lookup(cause.NotEncrypted).Fix {
			t.Errorf("fix %q, want not_encrypted's", c.Fix)
		}
	}
}

func TestDeviceSelection(t *testing.T) {
	const other = "1111111111111111111111111111111111111111"
	t.Run("UDID restricts to one phone", func(t *testing.T) {
		w := healthy(t)
		w.mux.devices = append(w.mux.devices, usbmux.Device{UDID: other, DeviceID: 8, ConnType: usbmux.ConnUSB})
		w.cfg.UDID = other
		rep := w.run(t)
		if len(rep.Devices) != 1 || rep.Devices[0].UDID != other {
			t.Errorf("devices checked: %+v", rep.Devices)
		}
	})
	t.Run("every connected phone, once, by USB when both", func(t *testing.T) {
		w := healthy(t)
		w.mux.devices = []usbmux.Device{
			{UDID: udid, DeviceID: 9, ConnType: usbmux.ConnNetwork},
			{UDID: other, DeviceID: 8, ConnType: usbmux.ConnUSB},
			{UDID: udid, DeviceID: 7, ConnType: usbmux.ConnUSB, Speed: usbmux.SpeedUSB2},
		}
		rep := w.run(t)
		if len(rep.Devices) != 2 || rep.Devices[0].UDID != udid || rep.Devices[1].UDID != other {
			t.Fatalf("devices checked: %+v", rep.Devices)
		}
		if c := find(t, rep, udid, IDLink); !strings.Contains(c.Found, "USB 2") {
			t.Errorf("the phone on both links was not checked over USB: %+v", c)
		}
	})
	t.Run("UDID not connected but known: its record is shown", func(t *testing.T) {
		w := healthy(t)
		w.mux.devices = nil
		w.cfg.UDID = udid
		rep := w.run(t)
		if got := rep.Failures(); !slices.Equal(got, []string{IDDevices}) {
			t.Fatalf("failures %v", got)
		}
		if len(rep.Devices) != 1 || rep.Devices[0].Connected {
			t.Fatalf("devices: %+v", rep.Devices)
		}
		if c := find(t, rep, udid, IDLockdown); c.Status != Skipped || c.Found != "not connected" {
			t.Errorf("lockdown of an absent phone: %+v", c)
		}
		if c := find(t, rep, udid, IDLastRun); c.Status != OK {
			t.Errorf("last run of an absent phone: %+v", c)
		}
	})
	t.Run("UDID unknown and not connected", func(t *testing.T) {
		w := healthy(t)
		w.cfg.UDID = other
		rep := w.run(t)
		if len(rep.Devices) != 0 || !slices.Equal(rep.Failures(), []string{IDDevices}) {
			t.Errorf("devices %+v, failures %v", rep.Devices, rep.Failures())
		}
		if c := find(t, rep, "", IDDevices); !strings.Contains(c.Found, other+" is not connected (1 iPhone)") {
			t.Errorf("devices: %+v", c)
		}
	})
}

func TestOverdue(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lastSuccess time.Duration // ago; 0 = never
		firstSeen   time.Duration // ago; 0 = unknown
		want        Status
	}{
		{"backed up a day ago", 24 * time.Hour, 30 * 24 * time.Hour, OK},
		{"backed up 8 days ago", 8 * 24 * time.Hour, 30 * 24 * time.Hour, Failed},
		{"never, first seen today", 0, time.Hour, Warning},
		{"never, first seen 10 days ago", 0, 10 * 24 * time.Hour, Failed},
		{"never, never seen", 0, 0, Warning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := healthy(t)
			d := &w.known.Devices[0]
			d.LastSuccess, d.FirstSeen = time.Time{}, time.Time{}
			if tc.lastSuccess > 0 {
				d.LastSuccess = now.Add(-tc.lastSuccess)
			}
			if tc.firstSeen > 0 {
				d.FirstSeen = now.Add(-tc.firstSeen)
			}
			c := find(t, w.run(t), udid, IDOverdue)
			if c.Status != tc.want {
				t.Errorf("overdue %+v, want %s", c, tc.want)
			}
			if c.Status == Failed && !strings.Contains(c.Found, "overdue_after 7 days") {
				t.Errorf("overdue does not name overdue_after: %q", c.Found)
			}
		})
	}
}

func TestFindUSBPort(t *testing.T) {
	sys := t.TempDir()
	mk := func(name string, files map[string]string) {
		dir := filepath.Join(sys, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, v := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("usb1", map[string]string{"busnum": "1", "devnum": "1"})
	mk("1-1", map[string]string{"busnum": "1", "devnum": "2", "serial": "SOMEKEYBOARD"})
	mk("1-1:1.0", map[string]string{"serial": "00008030001A2B3C4D5E802E"}) // an interface, not a device
	mk("1-2.3", map[string]string{"busnum": "1", "devnum": "5", "serial": "00008030001A2B3C4D5E802E"})
	mk("2-4", map[string]string{"busnum": "2", "devnum": "9", "serial": "0123456789abcdef0123456789abcdef01234567"})

	for _, tc := range []struct {
		name string
		dev  usbmux.Device
		want usbPort
		ok   bool
	}{
		{"by serial, behind a hub", usbmux.Device{UDID: udid, ConnType: usbmux.ConnUSB}, usbPort{"1-2.3", true}, true},
		{"by serial, on a root port", usbmux.Device{UDID: "0123456789ABCDEF0123456789ABCDEF01234567", ConnType: usbmux.ConnUSB}, usbPort{"2-4", false}, true},
		{"by LocationID", usbmux.Device{UDID: "ffff", LocationID: 2<<16 | 9, ConnType: usbmux.ConnUSB}, usbPort{"2-4", false}, true},
		{"not there", usbmux.Device{UDID: "ffff", LocationID: 3<<16 | 1, ConnType: usbmux.ConnUSB}, usbPort{}, false},
		{"over Wi-Fi", usbmux.Device{UDID: udid, ConnType: usbmux.ConnNetwork}, usbPort{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := findUSBPort(sys, tc.dev)
			if got != tc.want || ok != tc.ok {
				t.Errorf("findUSBPort = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, ok := findUSBPort(filepath.Join(sys, "missing"), usbmux.Device{UDID: udid, ConnType: usbmux.ConnUSB}); ok {
		t.Error("found a port in a missing directory")
	}

	// A hub shows in the link check as a warning.
	w := healthy(t)
	w.sysfs = sys
	rep := w.run(t)
	if c := find(t, rep, udid, IDLink); c.Status != Warning || !strings.Contains(c.Found, "port 1-2.3 behind a hub") || c.Fix == "" {
		t.Errorf("link behind a hub: %+v", c)
	}
}

func TestPrint(t *testing.T) {
	w := healthy(t)
	w.mux.trust = usbmux.DeviceLocked
	w.links = false
	out := text(t, w.run(t))
	for _, want := range []string{
		"This computer\n",
		"  ✓ usbmuxd ",
		"  ! hard links ",
		"\nAnna's iPhone (" + udid + "), iPhone14,5\n",
		"  ✗ trust (lockdown) ",
		"Fix: " + cause.Lookup(cause.DeviceLocked).Fix + "\n",
		"  - battery            needs a trusted lockdown session\n",
		"1 check failed; 1 warning.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if out := text(t, healthy(t).run(t)); !strings.Contains(out, "All checks passed.") || strings.Contains(out, "Fix:") {
		t.Errorf("healthy report:\n%s", out)
	}
}

func text(t *testing.T, rep Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := Print(&b, rep); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
