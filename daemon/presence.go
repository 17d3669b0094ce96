package daemon

import (
	"context"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/usbmux"
)

// This file routes presence: usbmuxd's view of the devices, settled by
// the stability tracker, to one actor per device.

// follow watches usbmuxd until ctx ends and hands each change to the
// device's actor. While nothing happens it blocks on usbmuxd's socket and
// on the stability tracker's next deadline only: no polling.
func (d *Daemon) follow(ctx context.Context) {
	w := usbmux.NewWatcher(usbmux.WatcherConfig{
		Client: d.mux,
		// On Linux usbmuxd often runs only while a phone is plugged in
		// (udev starts it), so "unavailable" is a normal idle state: retry
		// at a pace that costs next to nothing (about 4 ms of CPU a
		// minute) and still notices it before a phone would have settled.
		Backoff: usbmux.Backoff{Initial: 250 * time.Millisecond, Max: 10 * time.Second},
		Now:     d.now,
		Logger:  SlogLogger(d.log, "usbmux"),
	})
	p := usbmux.NewPresence(w, d.tracker, d.now)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error().Err(err).Msg("usbmuxd watcher stopped")
		}
	}()
	for ev := range p.Events() {
		d.dispatch(ctx, ev)
	}
	<-done
}

// dispatch routes one presence event.
func (d *Daemon) dispatch(ctx context.Context, ev usbmux.PresenceEvent) {
	switch ev.Mux {
	case usbmux.MuxUp, usbmux.MuxDown:
		d.setUsbmuxd(ev)
		return
	case usbmux.Paired:
		d.tell(ctx, ev.Device.UDID, actorMsg{kind: msgPaired})
		return
	}
	// Transitions from the stability tracker carry its status and are
	// about the USB attachment; Wi-Fi presence comes without one.
	fromTracker := ev.Status.UDID != ""
	udid := ev.Device.UDID
	if fromTracker {
		udid = ev.Status.UDID
	}
	if udid == "" {
		return
	}
	switch ev.Kind {
	case usbmux.TransitionPresent:
		dev := ev.Device
		if fromTracker && dev.ConnType != usbmux.ConnUSB {
			// Presence names a device by its latest attachment, which
			// for a phone on USB and Wi-Fi may be the Wi-Fi one; the
			// settled attachment is the USB one.
			usb, ok := d.findDevice(ctx, udid, usbmux.ConnUSB)
			if !ok {
				return
			}
			dev = usb
		}
		d.tell(ctx, udid, actorMsg{kind: msgPresent, dev: dev, status: ev.Status, at: ev.At})
	case usbmux.TransitionAbsent:
		conn := usbmux.ConnUSB
		if !fromTracker {
			conn = ev.Device.ConnType
		}
		d.tell(ctx, udid, actorMsg{kind: msgAbsent, conn: conn, status: ev.Status, at: ev.At})
	case usbmux.TransitionUnstable:
		d.tell(ctx, udid, actorMsg{kind: msgUnstable, status: ev.Status, at: ev.At})
	case usbmux.TransitionStable:
		d.tell(ctx, udid, actorMsg{kind: msgStable, status: ev.Status, at: ev.At})
	case usbmux.TransitionSlowLink:
		d.tell(ctx, udid, actorMsg{kind: msgSlowLink, status: ev.Status, at: ev.At})
	}
}

// findDevice asks usbmuxd for udid's current attachment of a connection
// type. The DeviceID changes when usbmuxd restarts, and the watcher does
// not report a device that stayed, so an attempt asks afresh.
func (d *Daemon) findDevice(ctx context.Context, udid, connType string) (usbmux.Device, bool) {
	list, err := d.mux.ListDevices(ctx)
	if err != nil {
		d.log.Debug().Err(err).Str("udid", udid).Msg("list devices")
		return usbmux.Device{}, false
	}
	for _, dev := range list {
		if dev.UDID == udid && dev.ConnType == connType {
			return dev, true
		}
	}
	return usbmux.Device{}, false
}

func (d *Daemon) setUsbmuxd(ev usbmux.PresenceEvent) {
	d.mu.Lock()
	d.usbmuxd.Connected = ev.Mux == usbmux.MuxUp
	d.usbmuxd.Error, d.usbmuxd.Cause = "", cause.None
	if ev.Err != nil {
		d.usbmuxd.Error, d.usbmuxd.Cause = ev.Err.Error(), cause.Of(ev.Err)
	}
	u := d.usbmuxd
	d.mu.Unlock()
	if u.Connected {
		d.log.Info().Str("usbmuxd", u.Address).Msg("usbmuxd connected")
	} else {
		d.log.Warn().Str("usbmuxd", u.Address).Str("cause", string(u.Cause)).Str("err", u.Error).Msg("usbmuxd unavailable")
	}
	d.bus.publish(api.Event{Type: api.EventUsbmuxd, Time: ev.At, Usbmuxd: &u, Cause: u.Cause, Summary: summary(u.Cause)})
}

func (d *Daemon) actor(udid string) (*actor, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.actors[udid]
	return a, ok
}

func (d *Daemon) allActors() []*actor {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*actor, 0, len(d.actors))
	for _, a := range d.actors {
		out = append(out, a)
	}
	return out
}
