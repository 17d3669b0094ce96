package doctor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/proto/afc"
	"github.com/backupd/backupd/usbmux"
)

// The checks of one iPhone.

// probe is what the live checks of one iPhone learned, in the order they
// learn it: each needs the one before.
type probe struct {
	recErr   error
	trust    usbmux.Trust
	trustErr error
	facts    usbmux.Facts
	factsErr error
}

func (p probe) trusted() bool {
	return p.recErr == nil && p.trustErr == nil && p.trust == usbmux.Trusted
}
func (p probe) hasFacts() bool { return p.trusted() && p.factsErr == nil }

func (r *run) device(ctx context.Context, t target, known Known, dir Check) DeviceReport {
	kd := knownDevice(known, t.dev.UDID)
	rep := DeviceReport{UDID: t.dev.UDID, Connected: t.connected, Checks: []Check{}}
	if kd != nil {
		rep.Name, rep.ProductType = kd.Name, kd.ProductType
	}
	if !t.connected {
		for _, id := range []string{IDLink, IDFlaps, IDPairRecord, IDLockdown, IDBattery, IDEncryption, IDFreeSpace, IDSyncLock} {
			rep.Checks = append(rep.Checks, skipped(id, "not connected"))
		}
		rep.Checks = append(rep.Checks, r.lastRun(kd), r.overdue(kd))
		return rep
	}

	var p probe
	r.bounded(ctx, func(ctx context.Context) { _, p.recErr = r.deps.Mux.ReadPairRecord(ctx, t.dev.UDID) })
	if p.recErr == nil {
		r.bounded(ctx, func(ctx context.Context) {
			p.trust, p.trustErr = r.deps.Mux.CheckTrust(ctx, t.dev, usbmux.TrustOptions{})
		})
	}
	if p.trusted() {
		r.bounded(ctx, func(ctx context.Context) { p.facts, p.factsErr = r.deps.Mux.Facts(ctx, t.dev) })
		if p.facts.Name != "" {
			rep.Name = p.facts.Name
		}
		if p.facts.ProductType != "" {
			rep.ProductType = p.facts.ProductType
		}
	}

	rep.Checks = append(rep.Checks,
		r.link(t.dev, rep.ProductType),
		r.flaps(kd, known.DaemonRunning),
		pairRecordCheck(p.recErr),
		lockdownCheck(p),
		r.battery(p),
		r.encryption(p),
		r.freeSpace(t.dev.UDID, p, dir),
		r.syncLock(ctx, t.dev, p, kd, known.DaemonRunning),
		r.lastRun(kd),
		r.overdue(kd),
	)
	return rep
}

func (r *run) link(dev usbmux.Device, productType string) Check {
	if dev.ConnType == usbmux.ConnNetwork {
		if !r.cfg.WiFi {
			c := newCheck(IDLink, Warning, "over Wi-Fi, and policy.wifi is off, so backupd does not back it up this way")
			c.Fix = "Connect it with a USB cable, or set wifi = true under [policy] to back it up over Wi-Fi."
			return c
		}
		return newCheck(IDLink, OK, "over Wi-Fi")
	}
	found := speedName(dev.Speed)
	port, portKnown := findUSBPort(r.deps.USBDevices, dev)
	if portKnown {
		found += ", port " + port.Path
		if port.BehindHub {
			found += " behind a hub"
		}
	}
	if usbmux.USB3Capable(productType) && dev.Speed > 0 && dev.Speed <= usbmux.SpeedUSB2 {
		c := newCheck(IDLink, Warning, fmt.Sprintf("%s, although this model (%s) can do USB 3", found, productType))
		return c.withCause(cause.SlowLink)
	}
	if portKnown && port.BehindHub {
		c := newCheck(IDLink, Warning, found)
		c.Fix = "Plug the iPhone straight into a port of the computer: hubs often slow the link down or drop it."
		return c
	}
	return newCheck(IDLink, OK, found)
}

// speedName names a USB ConnectionSpeed.
func speedName(bps uint64) string {
	switch {
	case bps == 0:
		return "USB, speed unknown"
	case bps < 480_000_000:
		return fmt.Sprintf("USB 1 (%s)", rate(bps))
	case bps <= usbmux.SpeedUSB2:
		return fmt.Sprintf("USB 2 (%s)", rate(bps))
	}
	return fmt.Sprintf("USB 3 (%s)", rate(bps))
}

func rate(bps uint64) string {
	if bps >= 1_000_000_000 && bps%1_000_000_000 == 0 {
		return fmt.Sprintf("%d Gb/s", bps/1_000_000_000)
	}
	if bps >= 1_000_000_000 {
		return fmt.Sprintf("%.1f Gb/s", float64(bps)/1e9)
	}
	return fmt.Sprintf("%d Mb/s", bps/1_000_000)
}

func (r *run) flaps(kd *api.Device, running bool) Check {
	if !running {
		return skipped(IDFlaps, "unknown: the backupd service counts them, and it is not running")
	}
	n := 0
	if kd != nil {
		n = kd.RecentFlaps
	}
	switch {
	case kd != nil && kd.Cause == cause.CableUnstable:
		c := newCheck(IDFlaps, Failed, fmt.Sprintf("%d in the last hour; backupd waits for the cable to settle", n))
		return c.withCause(cause.CableUnstable)
	case n > 0:
		c := newCheck(IDFlaps, Warning, fmt.Sprintf("%d in the last hour", n))
		return c.withCause(cause.CableUnstable)
	}
	return newCheck(IDFlaps, OK, "none in the last hour")
}

func pairRecordCheck(err error) Check {
	switch {
	case err == nil:
		return newCheck(IDPairRecord, OK, "usbmuxd holds one for this iPhone")
	case errors.Is(err, usbmux.ErrNoPairRecord):
		return newCheck(IDPairRecord, Failed, "usbmuxd holds none: this iPhone has not been paired with this computer").withCause(cause.NotPaired)
	case cause.Of(err) == cause.PairingInvalid:
		return newCheck(IDPairRecord, Failed, "usbmuxd holds one, but it is damaged: "+err.Error()).withCause(cause.PairingInvalid)
	}
	return newCheck(IDPairRecord, Failed, err.Error()).withCause(cause.Of(err))
}

func lockdownCheck(p probe) Check {
	switch {
	case p.recErr != nil:
		return skipped(IDLockdown, "needs a pair record")
	case p.trustErr != nil:
		return newCheck(IDLockdown, Failed, p.trustErr.Error()).withCause(cause.Of(p.trustErr))
	case p.trust == usbmux.Trusted:
		return newCheck(IDLockdown, OK, "a session starts: the iPhone trusts this computer and is unlocked")
	}
	code := p.trust.Cause()
	return newCheck(IDLockdown, Failed, fmt.Sprintf("%s (%s)", cause.Lookup(code).Summary, code)).withCause(code)
}

// needSession is a check that needs the iPhone's trust, skipped.
func needSession(id string) Check { return skipped(id, "needs a trusted lockdown session") }

func (r *run) battery(p probe) Check {
	switch {
	case !p.trusted():
		return needSession(IDBattery)
	case p.factsErr != nil:
		return newCheck(IDBattery, Failed, "cannot read the iPhone's values: "+p.factsErr.Error()).withCause(cause.Of(p.factsErr))
	case p.facts.BatteryLevel < 0:
		return skipped(IDBattery, "the iPhone does not say")
	}
	f := p.facts
	found := fmt.Sprintf("%d%%, not charging", f.BatteryLevel)
	if f.Charging {
		found = fmt.Sprintf("%d%%, charging", f.BatteryLevel)
	}
	if r.cfg.MinBattery > 0 && f.BatteryLevel < r.cfg.MinBattery && !f.Charging {
		c := newCheck(IDBattery, Failed, fmt.Sprintf("%s; backups wait for %d%% (policy.min_battery)", found, r.cfg.MinBattery))
		return c.withCause(cause.BatteryLow)
	}
	return newCheck(IDBattery, OK, found)
}

func (r *run) encryption(p probe) Check {
	switch {
	case !p.hasFacts():
		return needSession(IDEncryption)
	case p.facts.WillEncrypt:
		return newCheck(IDEncryption, OK, "backups are encrypted: a backup password is set on the iPhone")
	case r.cfg.RequireEncryption:
		c := newCheck(IDEncryption, Failed, `backups are not encrypted, and policy.encryption is "required": backupd will not back this iPhone up`)
		return c.withCause(cause.NotEncrypted)
	}
	return newCheck(IDEncryption, OK, `backups are not encrypted: no backup password is set on the iPhone ("backupd encryption on" sets one)`)
}

func (r *run) freeSpace(udid string, p probe, dir Check) Check {
	if dir.Status == Failed {
		return skipped(IDFreeSpace, "the backup folder is not usable")
	}
	free, err := r.deps.FreeSpace(r.cfg.BackupDir)
	if err != nil {
		return newCheck(IDFreeSpace, Warning, "cannot tell: "+err.Error())
	}
	need := r.cfg.FreeSpaceMargin
	var why string
	switch {
	case r.deps.HasLatest(udid):
		why = "the next backup receives only what changed"
	case p.hasFacts():
		need += p.facts.DiskUsed
		why = fmt.Sprintf("a first backup receives about what the iPhone stores, %s", api.FormatBytes(p.facts.DiskUsed))
	default:
		why = "the iPhone's size is unknown until it trusts this computer"
	}
	found := fmt.Sprintf("%s free; needs about %s (%s, plus policy.free_space_margin %s)", api.FormatBytes(free), api.FormatBytes(need), why, api.FormatBytes(r.cfg.FreeSpaceMargin))
	if free < need {
		return newCheck(IDFreeSpace, Failed, found).withCause(cause.HostDiskFull)
	}
	if full := r.cfg.FreeSpaceMargin + p.facts.DiskUsed; p.hasFacts() && free < full {
		c := newCheck(IDFreeSpace, Warning, fmt.Sprintf("%s; a full backup would need about %s", found, api.FormatBytes(full)))
		return c.withCause(cause.HostDiskFull)
	}
	return newCheck(IDFreeSpace, OK, found)
}

func (r *run) syncLock(ctx context.Context, dev usbmux.Device, p probe, kd *api.Device, running bool) Check {
	if !p.trusted() {
		return needSession(IDSyncLock)
	}
	if running && kd != nil && (kd.State == api.StateBackingUp || kd.State == api.StateAwaitingPasscode) {
		// Taking the lock now would only find backupd's own.
		return skipped(IDSyncLock, "backupd is backing it up now")
	}
	var err error
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout+r.cfg.LockTimeout)
	err = r.deps.SyncLock(cctx, dev, r.cfg.LockTimeout)
	cancel()
	switch {
	case err == nil:
		return newCheck(IDSyncLock, OK, "free: taken and released at once")
	case errors.Is(err, afc.ErrWouldBlock) || cause.Of(err) == cause.DeviceBusy:
		c := newCheck(IDSyncLock, Failed, fmt.Sprintf("another program has held it for all of %s", r.cfg.LockTimeout))
		return c.withCause(cause.DeviceBusy)
	}
	return newCheck(IDSyncLock, Failed, err.Error()).withCause(cause.Of(err))
}

func (r *run) lastRun(kd *api.Device) Check {
	if kd == nil || kd.LastAttempt == nil {
		return skipped(IDLastRun, "no backup attempted yet")
	}
	run := kd.LastAttempt
	at := run.End
	if at.IsZero() {
		at = run.Start
	}
	when := fmt.Sprintf("%s (%s ago)", at.Local().Format("2006-01-02 15:04"), roughly(r.now.Sub(at)))
	switch run.Outcome {
	case api.OutcomeSuccess:
		found := "succeeded " + when
		if run.Kind != "" {
			found += ", " + run.Kind
		}
		if run.Bytes > 0 {
			found += ", " + api.FormatBytes(run.Bytes)
		}
		return newCheck(IDLastRun, OK, found)
	case api.OutcomeRunning:
		return newCheck(IDLastRun, OK, "running since "+when)
	}
	code := run.Cause
	if code == cause.None {
		code = cause.Unknown
	}
	found := fmt.Sprintf("%s %s: %s", run.Outcome, when, cause.Lookup(code).Summary)
	if run.Note != "" {
		found += " (" + run.Note + ")"
	}
	st := Warning
	if run.Outcome == api.OutcomeFailed {
		st = Failed
	}
	return newCheck(IDLastRun, st, found).withCause(code)
}

// overdueFix is what to do about an overdue iPhone whose last attempt
// names no cause.
const overdueFix = `Plug the iPhone in, unlock it and keep it connected while the backupd service runs ("backupd backup --wait" starts a backup now); "backupd history" says why earlier attempts did not succeed.`

func (r *run) overdue(kd *api.Device) Check {
	od := r.cfg.OverdueAfter
	var last, first time.Time
	if kd != nil {
		last, first = kd.LastSuccess, kd.FirstSeen
	}
	fail := func(found string) Check {
		c := newCheck(IDOverdue, Failed, found)
		if a := kd.LastAttempt; a != nil && a.Outcome != api.OutcomeSuccess && a.Cause != cause.None {
			return c.withCause(a.Cause)
		}
		c.Fix = overdueFix
		return c
	}
	switch {
	case last.IsZero() && !first.IsZero() && r.now.Sub(first) > od:
		return fail(fmt.Sprintf("never backed up, though first seen %s ago (overdue_after %s)", roughly(r.now.Sub(first)), span(od)))
	case last.IsZero():
		return newCheck(IDOverdue, Warning, "never backed up yet")
	case r.now.Sub(last) > od:
		return fail(fmt.Sprintf("the last successful backup was %s ago (overdue_after %s)", roughly(r.now.Sub(last)), span(od)))
	}
	return newCheck(IDOverdue, OK, fmt.Sprintf("no: the last successful backup was %s ago (overdue_after %s)", roughly(r.now.Sub(last)), span(od)))
}
