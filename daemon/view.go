package daemon

import (
	"slices"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/usbmux"
)

// This file is the actor's view: its state as the API shows it, and the
// setters through which the actor and its attempts change it. Each state
// change is kept, logged and published.

// view is the actor's state as the API shows it.
type view struct {
	name, productType, iosVersion string
	connected                     bool
	link                          string
	speed                         uint64
	state                         api.State
	since                         time.Time
	cause                         cause.Code
	note                          string
	next                          time.Time
	progress                      *api.Progress
	battery                       int // -1 unknown
	charging, willEncrypt         bool
	flaps                         int
	phase                         phase
	// transitions are the latest state changes, oldest first.
	transitions []api.Transition
}

// phase is how far the current attempt has come, for telling a manual
// request apart from a duplicate.
type phase int

const (
	phaseIdle     phase = iota // no attempt, or its backup has ended
	phaseChecking              // checking trust, facts and policy
	phaseBackup                // queued for a slot or backing up
	phaseRestore               // a restore (its safety backup is phaseBackup)
)

// keepTransitions bounds view.transitions: enough for the story of the
// latest plug-in or two.
const keepTransitions = 32

// setState moves the device to state s. Every change is recorded: kept
// in the device's transitions (the API shows them), logged, and published
// on the event stream.
func (a *actor) setState(s api.State, c cause.Code, note string, next time.Time) {
	now := a.d.now()
	a.mu.Lock()
	changed := a.v.state != s || a.v.cause != c || a.v.note != note
	if a.v.state != s {
		a.v.since = now
	}
	a.v.state, a.v.cause, a.v.note, a.v.next = s, c, note, next
	if changed {
		if len(a.v.transitions) == keepTransitions {
			a.v.transitions = slices.Delete(a.v.transitions, 0, 1)
		}
		a.v.transitions = append(a.v.transitions, api.Transition{At: now, State: s, Cause: c, Note: note})
	}
	name := a.v.name
	a.mu.Unlock()
	if !changed {
		return
	}
	a.log.Info().Str("state", string(s)).Str("cause", string(c)).Str("note", note).Msg("device state")
	a.d.bus.publish(api.Event{Type: api.EventState, Time: now, UDID: a.udid, Name: name, State: s, Cause: c, Summary: summary(c), Note: note})
}

// setNext changes when the next attempt is due, and the note saying so.
func (a *actor) setNext(next time.Time, note string) {
	a.mu.Lock()
	a.v.next = next
	if note != "" {
		if a.v.note != "" {
			note = a.v.note + "; " + note
		}
		a.v.note = note
	}
	a.mu.Unlock()
}

func (a *actor) setConn(usb, wifi *usbmux.Device, flaps int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.v.connected = usb != nil || wifi != nil
	a.v.flaps = flaps
	switch {
	case usb != nil:
		a.v.link, a.v.speed = usb.ConnType, usb.Speed
	case wifi != nil:
		a.v.link, a.v.speed = wifi.ConnType, wifi.Speed
	default:
		a.v.link, a.v.speed = "", 0
	}
}

func (a *actor) setFacts(f usbmux.Facts) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f.Name != "" {
		a.v.name = f.Name
	}
	if f.ProductType != "" {
		a.v.productType = f.ProductType
	}
	if f.ProductVersion != "" {
		a.v.iosVersion = f.ProductVersion
	}
	a.v.battery, a.v.charging, a.v.willEncrypt = f.BatteryLevel, f.Charging, f.WillEncrypt
}

func (a *actor) setProgress(p *api.Progress) {
	a.mu.Lock()
	a.v.progress = p
	a.mu.Unlock()
}

func (a *actor) setPhase(p phase) {
	a.mu.Lock()
	a.v.phase = p
	a.mu.Unlock()
}

func (a *actor) currentPhase() phase {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.v.phase
}

func (a *actor) newConnection() {
	a.mu.Lock()
	clear(a.recorded)
	a.mu.Unlock()
}

// markRecorded reports whether code has not been recorded during this
// connection yet, and notes that it now is.
func (a *actor) markRecorded(code cause.Code) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.recorded[code] {
		return false
	}
	a.recorded[code] = true
	return true
}

func (a *actor) snapshot() view {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.v
	if v.progress != nil {
		p := *v.progress
		v.progress = &p
	}
	v.transitions = slices.Clone(v.transitions)
	return v
}

func (a *actor) snapshotName() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.v.name
}
