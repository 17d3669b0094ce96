package daemon

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/usbmux"
)

// The policy is pure: every method takes the time and the facts it
// decides on, so the tests drive it with a fake clock.

// admission is the verdict on a device before anything is asked of it.
type admission struct {
	ok bool
	// why, when !ok, is the note shown for the ignored device.
	why string
}

// admit decides whether a device on a connection type may be backed up at
// all. It runs before the trust check, so an excluded phone never shows a
// Trust prompt on our account.
func (p Policy) admit(udid, connType string) admission {
	switch {
	case slices.Contains(p.Deny, udid):
		return admission{why: "on the deny list (policy.deny)"}
	case len(p.Allow) > 0 && !slices.Contains(p.Allow, udid):
		return admission{why: "not on the allow list (policy.allow)"}
	case connType == usbmux.ConnNetwork && !p.WiFi:
		return admission{why: "connected over Wi-Fi, and Wi-Fi backups are off (policy.wifi)"}
	}
	return admission{ok: true}
}

// pickConn chooses the connection to back up over: USB when the device is
// on both, because it is faster and does not depend on the phone staying
// awake; Wi-Fi only when allowed.
func (p Policy) pickConn(usb, wifi *usbmux.Device) *usbmux.Device {
	if usb != nil {
		return usb
	}
	if wifi != nil && p.WiFi {
		return wifi
	}
	return nil
}

// verdict is what decide concludes.
type verdict int

const (
	// verdictRun: back up now.
	verdictRun verdict = iota + 1
	// verdictRecent: backed up less than min_interval ago; check again at
	// decision.until.
	verdictRecent
	// verdictSkip: a condition stops the backup (decision.cause); check
	// again at decision.until, if set.
	verdictSkip
)

// decision is decide's answer.
type decision struct {
	verdict verdict
	cause   cause.Code
	note    string
	// until is when the decision may change by itself: the end of the
	// interval or of the quiet hours, or the next recheck. Zero: only an
	// event (a replug, a manual request) changes it.
	until time.Time
}

// checkInput is what decide looks at.
type checkInput struct {
	now time.Time
	// manual: someone asked for this backup; min_interval and quiet
	// hours do not apply.
	manual bool
	// forceFull: a full backup was asked for, so it needs the device's
	// whole size free.
	forceFull bool
	// lastSuccess is when the device's latest successful backup ended;
	// zero if it never had one.
	lastSuccess time.Time
	facts       usbmux.Facts
	// hasLatest: a backup of the device is in backup_dir, so this one
	// starts from it and receives only the changes.
	hasLatest bool
	// free is the free space on the backup disk; freeErr why it is not
	// known (then the check is left to the backup itself, which reports
	// a full disk as it meets it).
	free    uint64
	freeErr error
}

// decide says whether to back a trusted device up now. The order is the
// order a person wants to hear the reasons in: a recent backup or quiet
// hours mean nothing is wrong; battery and disk space need someone.
func (p Policy) decide(in checkInput) decision {
	if !in.manual {
		if due := p.nextDue(in.lastSuccess); !due.IsZero() && in.now.Before(due) {
			return decision{
				verdict: verdictRecent,
				cause:   cause.Recent,
				note:    fmt.Sprintf("skipped: recent; backed up %s ago, next backup due %s", roundAgo(in.now.Sub(in.lastSuccess)), due.Format(time.DateTime)),
				until:   due,
			}
		}
		if quiet, end := p.QuietHours.contains(in.now); quiet {
			return decision{
				verdict: verdictSkip,
				cause:   cause.QuietHours,
				note:    fmt.Sprintf("quiet hours until %s", end.Format("15:04")),
				until:   end,
			}
		}
	}
	recheck := in.now.Add(p.ConditionRecheck.D())
	f := in.facts
	if p.MinBattery > 0 && f.BatteryLevel >= 0 && f.BatteryLevel < p.MinBattery && !f.Charging {
		return decision{
			verdict: verdictSkip,
			cause:   cause.BatteryLow,
			note:    fmt.Sprintf("battery at %d%% and not charging; backups wait for %d%% (policy.min_battery)", f.BatteryLevel, p.MinBattery),
			until:   recheck,
		}
	}
	if p.Encryption == EncryptionRequired && !f.WillEncrypt {
		// Rechecked, since encryption can be turned on in Finder or
		// iTunes as well as with backupd encryption on.
		return decision{
			verdict: verdictSkip,
			cause:   cause.NotEncrypted,
			note:    `the iPhone does not encrypt its backups and policy.encryption is "required"`,
			until:   recheck,
		}
	}
	if in.freeErr == nil {
		need := uint64(max(p.FreeSpaceMargin, 0))
		if !in.hasLatest || in.forceFull {
			// The first backup, or a full one, receives about what the
			// phone stores; later ones only what changed, which nobody
			// can know beforehand.
			need += f.DiskUsed
		}
		if in.free < need {
			return decision{
				verdict: verdictSkip,
				cause:   cause.HostDiskFull,
				note:    fmt.Sprintf("needs about %s free on the backup disk, %s free", api.FormatBytes(need), api.FormatBytes(in.free)),
				until:   recheck,
			}
		}
	}
	return decision{verdict: verdictRun}
}

// nextDue is when a device whose latest success ended at last is due
// again; zero when it is due at once (never backed up, or no interval).
func (p Policy) nextDue(last time.Time) time.Time {
	if last.IsZero() || p.MinInterval <= 0 {
		return time.Time{}
	}
	return last.Add(p.MinInterval.D())
}

// retryDelay is the wait before retry n (1-based) after a transient
// failure, and false once the retries are used up.
func (p Policy) retryDelay(n int) (time.Duration, bool) {
	if n < 1 || n > p.RetryLimit {
		return 0, false
	}
	d := p.RetryInitial.D()
	for i := 1; i < n && d < p.RetryMax.D(); i++ {
		d *= 2
	}
	return min(d, p.RetryMax.D()), true
}

// window parses the quiet hours into minutes after midnight; ok is false
// when none are set.
func (q QuietHours) window() (start, end int, ok bool, err error) {
	if q.Start == "" && q.End == "" {
		return 0, 0, false, nil
	}
	if start, err = parseClock(q.Start); err != nil {
		return 0, 0, false, fmt.Errorf("start: %w", err)
	}
	if end, err = parseClock(q.End); err != nil {
		return 0, 0, false, fmt.Errorf("end: %w", err)
	}
	if start == end {
		return 0, 0, false, errors.New("start and end are the same time")
	}
	return start, end, true, nil
}

// contains reports whether now is inside the quiet hours and, if it is,
// when they end, in now's location.
func (q QuietHours) contains(now time.Time) (bool, time.Time) {
	start, end, ok, err := q.window()
	if !ok || err != nil {
		return false, time.Time{}
	}
	m := now.Hour()*60 + now.Minute()
	y, mo, d := now.Date()
	endAt := func(dayOffset int) time.Time {
		return time.Date(y, mo, d+dayOffset, end/60, end%60, 0, 0, now.Location())
	}
	if start < end {
		if m >= start && m < end {
			return true, endAt(0)
		}
		return false, time.Time{}
	}
	// Across midnight: 23:00–07:00.
	switch {
	case m >= start:
		return true, endAt(1)
	case m < end:
		return true, endAt(0)
	}
	return false, time.Time{}
}

// parseClock reads "HH:MM" (24-hour) as minutes after midnight.
func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day such as 23:00", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// roundAgo rounds a past duration for a note: "3h12m", "45s".
func roundAgo(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Second).String()
}
