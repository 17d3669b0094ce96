package usbmux

import (
	"context"
	"time"
)

// PresenceEvent is a change the daemon acts on: a device became present
// (settled), went away, flapped, calmed down, sits on a slow link, was
// paired, or usbmuxd itself went down or came back.
type PresenceEvent struct {
	// Kind is a TransitionKind for device changes; Mux and Paired events
	// carry the watcher's event instead.
	Kind TransitionKind
	// Mux is set (MuxUp, MuxDown or Paired) for events that come straight
	// from the watcher; Kind is then zero.
	Mux    EventKind
	Device Device
	Status DeviceStability
	Err    error
	At     time.Time
}

// Presence joins the watcher and the stability tracker: usbmuxd's raw
// attach and detach notifications go in, settled device changes come out.
type Presence struct {
	w      *Watcher
	tr     *StabilityTracker
	now    func() time.Time
	events chan PresenceEvent
	// usb maps a UDID to its latest USB attachment: the tracker sees only
	// USB, so its transitions name that one even when the same phone is
	// on Wi-Fi too.
	usb map[string]Device
}

// NewPresence follows w through tr. now is the clock (nil: time.Now).
func NewPresence(w *Watcher, tr *StabilityTracker, now func() time.Time) *Presence {
	if now == nil {
		now = time.Now
	}
	return &Presence{w: w, tr: tr, now: now, events: make(chan PresenceEvent, 64), usb: map[string]Device{}}
}

// Events delivers the changes; it is closed when Run returns.
func (p *Presence) Events() <-chan PresenceEvent { return p.events }

// Run runs the watcher and turns its events into presence changes until
// ctx ends. It blocks on usbmuxd and on the tracker's next deadline only:
// no polling while idle.
func (p *Presence) Run(ctx context.Context) error {
	defer close(p.events)
	werr := make(chan error, 1)
	go func() { werr <- p.w.Run(ctx) }()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if next, ok := p.tr.NextDeadline(); ok {
			timer.Reset(max(next.Sub(p.now()), 0))
		}
		select {
		case ev, ok := <-p.w.Events():
			if !ok {
				return <-werr
			}
			if !p.handle(ctx, ev) {
				return ctx.Err()
			}
		case <-timer.C:
			if !p.emitAll(ctx, p.tr.Poll(p.now())) {
				return ctx.Err()
			}
		}
		timer.Stop()
	}
}

func (p *Presence) handle(ctx context.Context, ev Event) bool {
	switch ev.Kind {
	case MuxUp, MuxDown, Paired:
		return p.emit(ctx, PresenceEvent{Mux: ev.Kind, Device: ev.Device, Err: ev.Err, At: ev.At})
	case Attached:
		if ev.Device.ConnType == ConnNetwork {
			// Wi-Fi has no cable to flap or settle, and a phone on Wi-Fi
			// comes and goes as it sleeps: present at once.
			return p.emit(ctx, PresenceEvent{Kind: TransitionPresent, Device: ev.Device, At: ev.At})
		}
		p.usb[ev.Device.UDID] = ev.Device
		return p.emitAll(ctx, p.tr.Attach(ev.Device.UDID, ev.At, ev.Device.Speed))
	case Detached:
		if ev.Reconciled && p.stillListed(ev.Device) {
			// usbmuxd restarted and the phone is still there under a new
			// DeviceID: not a cable event.
			return true
		}
		if ev.Device.ConnType == ConnNetwork {
			return p.emit(ctx, PresenceEvent{Kind: TransitionAbsent, Device: ev.Device, At: ev.At})
		}
		return p.emitAll(ctx, p.tr.Detach(ev.Device.UDID, ev.At))
	}
	return true
}

// stillListed reports whether usbmuxd lists the phone again on the same
// kind of link, under whatever DeviceID.
func (p *Presence) stillListed(gone Device) bool {
	for _, d := range p.w.Devices() {
		if d.UDID == gone.UDID && d.ConnType == gone.ConnType {
			if d.ConnType == ConnUSB {
				p.usb[d.UDID] = d
			}
			return true
		}
	}
	return false
}

func (p *Presence) emitAll(ctx context.Context, ts []Transition) bool {
	for _, t := range ts {
		if !p.emit(ctx, PresenceEvent{Kind: t.Kind, Device: p.usb[t.UDID], Status: t.Status, At: t.At}) {
			return false
		}
	}
	return true
}

func (p *Presence) emit(ctx context.Context, ev PresenceEvent) bool {
	select {
	case p.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
