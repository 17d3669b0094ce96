package usbmux

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/backupd/backupd/cause"
)

// Link speeds as usbmuxd reports them in an Attached message's
// ConnectionSpeed property, in bits per second.
const (
	SpeedUSB2 uint64 = 480_000_000   // High Speed
	SpeedUSB3 uint64 = 5_000_000_000 // SuperSpeed
)

// StabilityConfig tunes the StabilityTracker. A zero field takes its
// default; DefaultStabilityConfig returns them all.
type StabilityConfig struct {
	// Settle is how long a device must stay attached before it counts as
	// present. A cable that is being pushed in, or a phone that reboots
	// its USB stack after a trust prompt, attaches and detaches within a
	// second or two; starting lockdown in that window only fails.
	// Default 5 s.
	Settle time.Duration
	// FlapCount detaches within FlapWindow mark the cable unstable.
	// Default 3 in 60 s: one deliberate unplug and replug is normal, three
	// in a minute is not.
	FlapCount  int
	FlapWindow time.Duration
	// QuietPeriod is how long an unstable device must then stay attached
	// without a detach before it is trusted again. Default 2 min: longer
	// than a typical flapping interval (seconds to tens of seconds), so a
	// bad cable shows itself again within it, and short enough that a
	// person who swapped the cable does not wait long.
	QuietPeriod time.Duration
	// FlapHistory is how far back flaps are remembered for reporting
	// ("flaps in the last hour" in doctor). Default 1 h. It never limits
	// FlapWindow: the tracker keeps whichever is longer.
	FlapHistory time.Duration
	// SlowLinkMax is the highest ConnectionSpeed, in bits per second, that
	// counts as slow for a device that can do USB 3. Default 480 Mb/s.
	SlowLinkMax uint64
}

// DefaultStabilityConfig returns the defaults described on StabilityConfig.
func DefaultStabilityConfig() StabilityConfig {
	return StabilityConfig{
		Settle:      5 * time.Second,
		FlapCount:   3,
		FlapWindow:  60 * time.Second,
		QuietPeriod: 2 * time.Minute,
		FlapHistory: time.Hour,
		SlowLinkMax: SpeedUSB2,
	}
}

// withDefaults fills zero fields and rejects negative ones.
func (c StabilityConfig) withDefaults() (StabilityConfig, error) {
	d := DefaultStabilityConfig()
	var errs []error
	dur := func(name string, v *time.Duration, def time.Duration) {
		switch {
		case *v < 0:
			errs = append(errs, fmt.Errorf("%s must not be negative, got %v", name, *v))
		case *v == 0:
			*v = def
		}
	}
	dur("settle", &c.Settle, d.Settle)
	dur("flap window", &c.FlapWindow, d.FlapWindow)
	dur("quiet period", &c.QuietPeriod, d.QuietPeriod)
	dur("flap history", &c.FlapHistory, d.FlapHistory)
	switch {
	case c.FlapCount < 0:
		errs = append(errs, fmt.Errorf("flap count must not be negative, got %d", c.FlapCount))
	case c.FlapCount == 0:
		c.FlapCount = d.FlapCount
	}
	if c.SlowLinkMax == 0 {
		c.SlowLinkMax = d.SlowLinkMax
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("stability config: %w", err)
	}
	return c, nil
}

// USB3Capable reports whether an iPhone model, named by its lockdown
// ProductType, has a USB 3 port. Only the USB-C Pro models do: the
// iPhone 15 Pro and later Pros. Left out on purpose, because 480 Mb/s is
// the most their port does:
//
//   - iPhone 14 Pro and Pro Max (iPhone15,2 and iPhone15,3), and every
//     earlier Pro: Lightning, USB 2.
//   - iPhone 15 and 15 Plus (iPhone15,4, iPhone15,5), iPhone 16, 16 Plus
//     and 16e (iPhone17,3 to iPhone17,5), iPhone 17 (iPhone18,3) and
//     iPhone Air (iPhone18,4): USB-C, but USB 2 speed.
//
// A new Pro model needs adding here; until it is, it gets no slow_link
// warning, which errs on the quiet side.
func USB3Capable(productType string) bool {
	switch productType {
	case "iPhone16,1", // iPhone 15 Pro
		"iPhone16,2", // iPhone 15 Pro Max
		"iPhone17,1", // iPhone 16 Pro
		"iPhone17,2", // iPhone 16 Pro Max
		"iPhone18,1", // iPhone 17 Pro
		"iPhone18,2": // iPhone 17 Pro Max
		return true
	}
	return false
}

// TransitionKind names a change in a device's stability.
type TransitionKind int

// Transitions the tracker reports.
const (
	// TransitionPresent: the device stayed attached for the settle time.
	TransitionPresent TransitionKind = iota + 1
	// TransitionAbsent: a present device was detached. A device detached
	// while still settling was never present and reports nothing.
	TransitionAbsent
	// TransitionUnstable: the device flapped FlapCount times within
	// FlapWindow (cause cable_unstable).
	TransitionUnstable
	// TransitionStable: an unstable device stayed attached for the quiet
	// period.
	TransitionStable
	// TransitionSlowLink: a present USB 3 capable device is on a link at
	// or below SlowLinkMax (cause slow_link). Reported once per
	// attachment.
	TransitionSlowLink
)

func (k TransitionKind) String() string {
	switch k {
	case TransitionPresent:
		return "present"
	case TransitionAbsent:
		return "absent"
	case TransitionUnstable:
		return "unstable"
	case TransitionStable:
		return "stable"
	case TransitionSlowLink:
		return "slow_link"
	}
	return fmt.Sprintf("TransitionKind(%d)", int(k))
}

// Transition is one change, with the device's status right after it.
type Transition struct {
	UDID string
	Kind TransitionKind
	// At is when the change happened, which for a settle or quiet period
	// is when it ran out, even if Poll was called later.
	At     time.Time
	Status DeviceStability
}

// DeviceStability is what the tracker knows about one device.
type DeviceStability struct {
	UDID string
	// Attached: usbmuxd lists the device now.
	Attached bool
	// AttachedSince is the start of the current attachment; zero when
	// detached.
	AttachedSince time.Time
	// Present: attached for at least the settle time.
	Present bool
	// Unstable: the cable flapped; see StabilityConfig.FlapCount. Stays
	// true while the device is away and clears only after the quiet
	// period attached.
	Unstable bool
	// FlapsInWindow counts the detaches within FlapWindow before now, and
	// RecentFlaps those within FlapHistory.
	FlapsInWindow int
	RecentFlaps   int
	// Speed is the link speed in bits per second as usbmuxd reported it,
	// 0 when unknown.
	Speed       uint64
	ProductType string
	// SlowLink: the model can do USB 3 and the link is at or below
	// SlowLinkMax.
	SlowLink bool
}

// Ready reports whether a backup may start: present on a stable cable.
func (s DeviceStability) Ready() bool { return s.Present && !s.Unstable }

// Cause returns the cause that stops or slows a backup of this device:
// cable_unstable, slow_link, or None.
func (s DeviceStability) Cause() cause.Code {
	switch {
	case s.Unstable:
		return cause.CableUnstable
	case s.SlowLink:
		return cause.SlowLink
	}
	return cause.None
}

// deviceState is the tracker's record of one UDID.
type deviceState struct {
	attached     bool
	attachedAt   time.Time
	present      bool
	unstable     bool
	flaps        []time.Time // detach times, oldest first
	speed        uint64
	productType  string
	slowReported bool // TransitionSlowLink sent for this attachment
}

// StabilityTracker decides, per UDID, when an attached iPhone counts as
// present and whether its cable can be trusted. It is a state machine that
// never reads the time itself: every call carries the time, so the watcher
// feeds it from its clock and tests from a fake one, and NextDeadline says
// when the next Poll has something to report.
//
// Feed it USB attachments only: the same UDID attached over the network
// says nothing about a cable. Attach of an attached device only updates
// its link facts, so a watcher that reconnects to usbmuxd can replay
// ListDevices without resetting anything. The methods are safe for
// concurrent use.
type StabilityTracker struct {
	cfg StabilityConfig

	mu      sync.Mutex
	devices map[string]*deviceState
	latest  time.Time // the latest time any call carried
}

// NewStabilityTracker returns a tracker; zero fields of cfg take their
// defaults.
func NewStabilityTracker(cfg StabilityConfig) (*StabilityTracker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &StabilityTracker{cfg: cfg, devices: map[string]*deviceState{}}, nil
}

// Config returns the configuration in force, defaults filled in.
func (t *StabilityTracker) Config() StabilityConfig { return t.cfg }

// clamp keeps time from going backwards: a caller whose events arrive out
// of order (two goroutines reading one clock) must not make a settle time
// negative or a flap land before one already counted.
func (t *StabilityTracker) clamp(at time.Time) time.Time {
	if at.Before(t.latest) {
		return t.latest
	}
	t.latest = at
	return at
}

// Attach records that usbmuxd reported udid attached at the given time,
// with its ConnectionSpeed in bits per second (0 if unknown). It starts
// the settle time unless the device is already attached.
func (t *StabilityTracker) Attach(udid string, at time.Time, speed uint64) []Transition {
	t.mu.Lock()
	defer t.mu.Unlock()
	at = t.clamp(at)
	d := t.devices[udid]
	if d == nil {
		d = &deviceState{}
		t.devices[udid] = d
	}
	if speed != 0 {
		d.speed = speed
	}
	if d.attached {
		return t.slowLinkCheck(udid, d, at, nil)
	}
	d.attached = true
	d.attachedAt = at
	d.present = false
	d.slowReported = false
	return nil
}

// SetProductType records the device's ProductType once lockdown has told
// it, which is usually after the device is present: the slow_link check
// needs it.
func (t *StabilityTracker) SetProductType(udid, productType string, at time.Time) []Transition {
	t.mu.Lock()
	defer t.mu.Unlock()
	at = t.clamp(at)
	d := t.devices[udid]
	if d == nil {
		return nil // detached and forgotten meanwhile; it will be asked again
	}
	d.productType = productType
	return t.slowLinkCheck(udid, d, at, nil)
}

// Detach records that usbmuxd reported udid detached. Every detach counts
// as a flap, including one during the settle time: a bad cable often never
// settles. A detach of a device that is not attached is ignored.
func (t *StabilityTracker) Detach(udid string, at time.Time) []Transition {
	t.mu.Lock()
	defer t.mu.Unlock()
	at = t.clamp(at)
	d := t.devices[udid]
	if d == nil || !d.attached {
		return nil
	}
	var out []Transition
	wasPresent := d.present
	d.attached = false
	d.attachedAt = time.Time{}
	d.present = false
	d.slowReported = false
	d.flaps = append(d.flaps, at)
	t.prune(d, at)
	if wasPresent {
		out = append(out, t.transition(udid, d, TransitionAbsent, at, at))
	}
	if !d.unstable && countSince(d.flaps, at.Add(-t.cfg.FlapWindow)) >= t.cfg.FlapCount {
		d.unstable = true
		out = append(out, t.transition(udid, d, TransitionUnstable, at, at))
	}
	return out
}

// Poll reports what the passing of time changed up to now: devices that
// settled and unstable devices whose quiet period ran out. Transitions come
// in time order, ties by UDID.
func (t *StabilityTracker) Poll(now time.Time) []Transition {
	t.mu.Lock()
	defer t.mu.Unlock()
	now = t.clamp(now)
	var out []Transition
	for _, udid := range t.sortedUDIDs() {
		d := t.devices[udid]
		if d.attached && !d.present {
			if settled := d.attachedAt.Add(t.cfg.Settle); !now.Before(settled) {
				d.present = true
				out = append(out, t.transition(udid, d, TransitionPresent, settled, now))
				out = t.slowLinkCheck(udid, d, settled, out)
			}
		}
		if d.attached && d.unstable {
			if quiet := d.attachedAt.Add(t.cfg.QuietPeriod); !now.Before(quiet) {
				d.unstable = false
				out = append(out, t.transition(udid, d, TransitionStable, quiet, now))
			}
		}
		t.prune(d, now)
		if !d.attached && !d.unstable && len(d.flaps) == 0 {
			delete(t.devices, udid) // nothing left worth remembering
		}
	}
	slices.SortStableFunc(out, func(a, b Transition) int { return a.At.Compare(b.At) })
	return out
}

// NextDeadline returns the earliest time at which Poll will report
// something if nothing else happens first, and false when nothing is
// pending. The watcher sets its timer to it.
func (t *StabilityTracker) NextDeadline() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var next time.Time
	found := false
	consider := func(at time.Time) {
		if !found || at.Before(next) {
			next, found = at, true
		}
	}
	for _, d := range t.devices {
		if !d.attached {
			continue
		}
		if !d.present {
			consider(d.attachedAt.Add(t.cfg.Settle))
		}
		if d.unstable {
			consider(d.attachedAt.Add(t.cfg.QuietPeriod))
		}
	}
	return next, found
}

// Status returns what is known about udid as of now, and false for a
// device the tracker does not remember.
func (t *StabilityTracker) Status(udid string, now time.Time) (DeviceStability, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devices[udid]
	if d == nil {
		return DeviceStability{UDID: udid}, false
	}
	return t.status(udid, d, t.clamp(now)), true
}

// Statuses returns every remembered device as of now, ordered by UDID.
func (t *StabilityTracker) Statuses(now time.Time) []DeviceStability {
	t.mu.Lock()
	defer t.mu.Unlock()
	now = t.clamp(now)
	udids := t.sortedUDIDs()
	out := make([]DeviceStability, 0, len(udids))
	for _, udid := range udids {
		out = append(out, t.status(udid, t.devices[udid], now))
	}
	return out
}

func (t *StabilityTracker) status(udid string, d *deviceState, now time.Time) DeviceStability {
	return DeviceStability{
		UDID:          udid,
		Attached:      d.attached,
		AttachedSince: d.attachedAt,
		Present:       d.present,
		Unstable:      d.unstable,
		FlapsInWindow: countSince(d.flaps, now.Add(-t.cfg.FlapWindow)),
		RecentFlaps:   countSince(d.flaps, now.Add(-t.cfg.FlapHistory)),
		Speed:         d.speed,
		ProductType:   d.productType,
		SlowLink:      t.slow(d),
	}
}

// transition builds a Transition that happened at at, with the status as
// seen at now.
func (t *StabilityTracker) transition(udid string, d *deviceState, kind TransitionKind, at, now time.Time) Transition {
	return Transition{UDID: udid, Kind: kind, At: at, Status: t.status(udid, d, now)}
}

// slow reports whether d is on a slow link for what it can do. An unknown
// speed (0) is not slow: we would be warning about nothing.
func (t *StabilityTracker) slow(d *deviceState) bool {
	return d.speed != 0 && d.speed <= t.cfg.SlowLinkMax && USB3Capable(d.productType)
}

// slowLinkCheck appends TransitionSlowLink to out the first time a present
// device is seen to be on a slow link during this attachment.
func (t *StabilityTracker) slowLinkCheck(udid string, d *deviceState, at time.Time, out []Transition) []Transition {
	if d.present && !d.slowReported && t.slow(d) {
		d.slowReported = true
		out = append(out, t.transition(udid, d, TransitionSlowLink, at, at))
	}
	return out
}

// prune forgets flaps too old to matter for either the window or the
// report.
func (t *StabilityTracker) prune(d *deviceState, now time.Time) {
	keep := max(t.cfg.FlapWindow, t.cfg.FlapHistory)
	cut := now.Add(-keep)
	i := 0
	for i < len(d.flaps) && !d.flaps[i].After(cut) {
		i++
	}
	d.flaps = slices.Delete(d.flaps, 0, i)
}

func (t *StabilityTracker) sortedUDIDs() []string {
	udids := make([]string, 0, len(t.devices))
	for udid := range t.devices {
		udids = append(udids, udid)
	}
	slices.SortFunc(udids, strings.Compare)
	return udids
}

// countSince counts the times strictly after since. The window is
// half-open, (now-window, now], so a flap exactly one window old has left
// it.
func countSince(times []time.Time, since time.Time) int {
	n := 0
	for _, at := range times {
		if at.After(since) {
			n++
		}
	}
	return n
}
