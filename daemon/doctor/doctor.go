// Package doctor runs the live checks behind `backupd doctor`: whether
// usbmuxd answers, the service runs and the backup folder works, and for
// each connected iPhone its link, pairing, trust, battery, free space,
// sync lock, encryption and backup record. Each check says what it found
// and, when something is wrong, the fix, taken from package cause where a
// cause fits so the words cannot drift from the rest of backupd.
//
// A check that cannot run because an earlier one failed (no usbmuxd, so
// no device; no trust, so no battery) is reported as skipped with the
// reason, never as a pass and never as a second failure: one problem
// fails one check.
package doctor

import (
	"context"
	"fmt"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/usbmux"
)

// Status is the verdict of one check.
type Status string

// The verdicts. Only Failed makes doctor exit non-zero: a warning is
// worth knowing but does not stop backups, and a skipped check could not
// run (the reason is in Found).
const (
	OK      Status = "ok"
	Warning Status = "warning"
	Failed  Status = "failed"
	Skipped Status = "skipped"
)

// Mark is the status's one-character sign in the text report.
func (s Status) Mark() string {
	switch s {
	case OK:
		return "✓"
	case Warning:
		return "!"
	case Failed:
		return "✗"
	}
	return "-"
}

// Check IDs: stable, for scripts that read --json.
const (
	// This computer.
	IDUsbmuxd   = "usbmuxd"
	IDDaemon    = "daemon"
	IDBackupDir = "backup_dir"
	IDHardLinks = "hard_links"
	IDDevices   = "devices"
	// Each iPhone.
	IDLink       = "link"
	IDFlaps      = "flaps"
	IDPairRecord = "pair_record"
	IDLockdown   = "lockdown"
	IDBattery    = "battery"
	IDEncryption = "encryption"
	IDFreeSpace  = "free_space"
	IDSyncLock   = "sync_lock"
	IDLastRun    = "last_run"
	IDOverdue    = "overdue"
)

// titles are the checks' names in the text report.
var titles = map[string]string{
	IDUsbmuxd:    "usbmuxd",
	IDDaemon:     "backupd service",
	IDBackupDir:  "backup folder",
	IDHardLinks:  "hard links",
	IDDevices:    "iPhones connected",
	IDLink:       "connection",
	IDFlaps:      "cable drops (1 h)",
	IDPairRecord: "pair record",
	IDLockdown:   "trust (lockdown)",
	IDBattery:    "battery",
	IDEncryption: "encryption",
	IDFreeSpace:  "free space",
	IDSyncLock:   "sync lock",
	IDLastRun:    "last attempt",
	IDOverdue:    "overdue",
}

// Check is the result of one check.
type Check struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Status Status `json:"status"`
	// Found says what the check saw, or why it was skipped.
	Found string `json:"found"`
	// Fix says what to do, for a failure or a warning.
	Fix string `json:"fix,omitempty"`
	// Cause is the cause code the problem matches, if one does.
	Cause cause.Code `json:"cause,omitempty"`
}

// DeviceReport is the checks of one iPhone.
type DeviceReport struct {
	UDID        string  `json:"udid"`
	Name        string  `json:"name,omitempty"`
	ProductType string  `json:"product_type,omitempty"`
	Connected   bool    `json:"connected"`
	Checks      []Check `json:"checks"`
}

// Report is everything doctor found.
type Report struct {
	// OK: no check failed.
	OK            bool           `json:"ok"`
	DaemonRunning bool           `json:"daemon_running"`
	Checks        []Check        `json:"checks"`
	Devices       []DeviceReport `json:"devices"`
}

// Failures returns the IDs of the failed checks, a device's as
// "UDID/id".
func (r Report) Failures() []string {
	var out []string
	for _, c := range r.Checks {
		if c.Status == Failed {
			out = append(out, c.ID)
		}
	}
	for _, d := range r.Devices {
		for _, c := range d.Checks {
			if c.Status == Failed {
				out = append(out, d.UDID+"/"+c.ID)
			}
		}
	}
	return out
}

// Config is what the checks compare against: the configuration's values.
type Config struct {
	// BackupDir is backup_dir.
	BackupDir string
	// FreeSpaceMargin is policy.free_space_margin in bytes.
	FreeSpaceMargin uint64
	// MinBattery is policy.min_battery; 0 turns the check off.
	MinBattery int
	// WiFi is policy.wifi.
	WiFi bool
	// RequireEncryption is policy.encryption = "required".
	RequireEncryption bool
	// Clone is backup.clone: "none" keeps no versions, so hard links do
	// not matter.
	Clone string
	// OverdueAfter is overdue_after.
	OverdueAfter time.Duration
	// UDID restricts the device checks to one iPhone; empty checks every
	// connected one.
	UDID string
	// CheckTimeout bounds each check; default 10 s.
	CheckTimeout time.Duration
	// LockTimeout is how long the sync lock is tried; default 3 s.
	LockTimeout time.Duration
}

// Mux is the part of usbmux.Client the checks use.
type Mux interface {
	Addr() usbmux.Addr
	ListDevices(ctx context.Context) ([]usbmux.Device, error)
	ReadPairRecord(ctx context.Context, udid string) (*usbmux.PairRecord, error)
	CheckTrust(ctx context.Context, dev usbmux.Device, opts usbmux.TrustOptions) (usbmux.Trust, error)
	Facts(ctx context.Context, dev usbmux.Device) (usbmux.Facts, error)
}

// Known is what the daemon, or with none running the history, knows.
type Known struct {
	DaemonRunning bool
	Health        *api.Health
	// Devices are the daemon's live view, or the history's.
	Devices []api.Device
}

// Deps are the outside world the checks look at; Live returns the real
// ones, tests put fakes in.
type Deps struct {
	Mux Mux
	// Known asks the daemon, or reads the history when none runs.
	Known func(ctx context.Context) (Known, error)
	// SyncLock takes the device's sync lock and releases it at once. An
	// error wrapping afc.ErrWouldBlock (or with cause device_busy) means
	// another program holds it.
	SyncLock func(ctx context.Context, dev usbmux.Device, timeout time.Duration) error
	// FreeSpace returns the bytes free on dir's file system.
	FreeSpace func(dir string) (uint64, error)
	// HardLinks tells whether dir's file system has hard links.
	HardLinks func(dir string) (bool, error)
	// HasLatest tells whether backup_dir holds a backup of udid.
	HasLatest func(udid string) bool
	// USBDevices is the sysfs directory of USB devices, for finding hubs
	// (/sys/bus/usb/devices); empty or missing means unknown.
	USBDevices string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run runs every check and returns the report. It fails only when ctx
// ends; every problem it finds is in the report.
func Run(ctx context.Context, cfg Config, deps Deps) (Report, error) {
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 10 * time.Second
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = 3 * time.Second
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	r := &run{cfg: cfg, deps: deps, now: deps.Now()}
	rep := Report{Checks: []Check{}, Devices: []DeviceReport{}}

	devs, muxCheck := r.usbmuxd(ctx)
	rep.Checks = append(rep.Checks, muxCheck)
	known, daemonCheck := r.daemon(ctx)
	rep.DaemonRunning = known.DaemonRunning
	rep.Checks = append(rep.Checks, daemonCheck)
	dirCheck := r.backupDir()
	rep.Checks = append(rep.Checks, dirCheck, r.hardLinks(dirCheck))

	targets, devCheck := r.devices(muxCheck, devs, known)
	rep.Checks = append(rep.Checks, devCheck)
	for _, t := range targets {
		rep.Devices = append(rep.Devices, r.device(ctx, t, known, dirCheck))
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("doctor: %w", err)
	}
	rep.OK = len(rep.Failures()) == 0
	return rep, nil
}

// run is one doctor run.
type run struct {
	cfg  Config
	deps Deps
	now  time.Time
}

func newCheck(id string, st Status, found string) Check {
	return Check{ID: id, Title: titles[id], Status: st, Found: found}
}

// withCause sets the check's cause and the fix cause gives for it.
func (c Check) withCause(code cause.Code) Check {
	c.Cause = code
	if code != cause.None {
		c.Fix = cause.Lookup(code).Fix
	}
	return c
}

func skipped(id, why string) Check { return newCheck(id, Skipped, why) }

// bounded runs f under the check timeout.
func (r *run) bounded(ctx context.Context, f func(ctx context.Context)) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout)
	defer cancel()
	f(cctx)
}
